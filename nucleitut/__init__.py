"""nucleitut: the library behind the book *Segmenting nuclei with deep learning*.

It follows Scherr et al. (2018), "Best Practices in Deep Learning-Based Segmentation of
Microscopy Images", on the Kaggle 2018 Data Science Bowl data (BBBC038v1). Modules map to the
stages of the pipeline and data flows one way::

    data -> targets -> unet / losses / training -> postprocess -> metrics

``config`` holds the paper's Table 3 and the two profiles (``quick`` and ``full``).
"""

__version__ = "0.1.0"
