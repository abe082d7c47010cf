"""nucleitut: the library behind the book *Segmenting nuclei with deep learning*.

It follows Scherr et al. (2018), "Best Practices in Deep Learning-Based Segmentation of
Microscopy Images", on the Kaggle 2018 Data Science Bowl data (BBBC038v1). Modules map to the
stages of the pipeline and data flows one way::

    images -> data -> targets -> unet / losses / training -> postprocess -> metrics

``config`` holds the paper's Table 3 and the two profiles (``quick`` and ``full``).
``segment`` applies the shipped reference networks to your own images:
``nucleitut.segment(image)`` returns instance labels (imported on first use, so that
``import nucleitut`` stays light).
"""

__version__ = "0.1.0"

__all__ = ["segment", "segment_image"]


def __getattr__(name):
    # Lazy: the segment module pulls in scipy/skimage (and Keras when it runs). The module
    # is callable: ``nucleitut.segment(image)`` calls ``nucleitut.segment.segment(image)``.
    if name in ("segment", "segment_image"):
        import importlib

        module = importlib.import_module(".segment", __name__)
        return module if name == "segment" else module.segment_image
    raise AttributeError(f"module 'nucleitut' has no attribute {name!r}")
