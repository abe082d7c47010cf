"""nucleitut: the library behind the book *Segmenting nuclei with deep learning*.

It follows Scherr et al. (2018), "Best Practices in Deep Learning-Based Segmentation of
Microscopy Images", on the Kaggle 2018 Data Science Bowl data (BBBC038v1). Modules map to the
stages of the pipeline and data flows one way (``tests/test_imports.py`` checks it)::

    images -> data -> targets -> unet, losses -> training -> predict -> postprocess
           -> metrics, sizing -> pipeline -> evaluation, records -> outputs, finetune, CLI

``config`` holds the paper's Table 3, the profiles (``quick``, ``cpu``, ``full``, ``gpu``) and the
pipelines. ``nucleitut.segment(image)`` segments your own images with the shipped reference
networks (:func:`nucleitut.pipeline.segment`; imported on first use, so that
``import nucleitut`` stays light).
"""

__version__ = "0.1.0"

__all__ = ["segment", "Pipeline"]


def __getattr__(name):
    # Lazy: the pipeline module pulls in scipy/skimage and Keras.
    if name in ("segment", "Pipeline"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'nucleitut' has no attribute {name!r}")
