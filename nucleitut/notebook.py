"""Small helpers for the chapters: the set-up banner, showing library code, explorers.

Every chapter starts with::

    from nucleitut import notebook
    book = notebook.setup()

which prints the profile, the data in use and the package versions, and loads the data.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import platform
import textwrap
from typing import Callable, Sequence

__all__ = ["setup", "Chapter", "show_source", "explorer", "versions"]

# The banner fits a phone-width page and a narrow notebook: lines of at most this many
# characters (a single word longer than that, such as a long path, stays whole).
BANNER_WIDTH = 80


@dataclasses.dataclass
class Chapter:
    """What a chapter needs: the profile, the data and its split."""

    profile: "object"
    dataset: "object"
    split: "object"

    def test_pairs(self):
        """(image, labels) of the test part of the split."""
        return [self.dataset.get(i) for i in self.split.test]


def versions() -> dict:
    """Versions of the packages the chapters depend on."""
    import keras
    import matplotlib
    import numpy
    import scipy
    import skimage

    import nucleitut

    result = {
        "python": platform.python_version(),
        "nucleitut": nucleitut.__version__,
        "keras": keras.__version__,
        f"backend ({keras.backend.backend()})": _backend_version(keras.backend.backend()),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "matplotlib": matplotlib.__version__,
    }
    return result


def _backend_version(name: str) -> str:
    try:
        return __import__(name).__version__
    except Exception:
        return "?"


def setup(load_data: bool = True, verbose: bool = True) -> Chapter:
    """Print the profile, data source and versions; load the data set of the profile."""
    import matplotlib.pyplot as plt

    from . import config, data

    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90, "image.interpolation": "nearest"})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    profile = config.get_profile()
    dataset = data.load_dataset(profile=profile.name, verbose=False) if load_data else None
    split = dataset.split() if dataset is not None else None
    if verbose:
        print(_wrap("Profile: ", f"{profile.name} — {profile.description}"))
        if dataset is not None:
            n = split.sizes()
            kind = "the embedded sample (the full data set is used in the full profile)" if dataset.is_sample else "the full data set"
            print(_wrap("Data:    ", str(dataset.source)))
            print(_wrap("         ", f"{len(dataset)} images, {kind}; split {n[0]} train / {n[1]} validation / {n[2]} test"))
        print(_wrap("Tested with: ", [f"{k} {v}" for k, v in versions().items()]))
    return Chapter(profile, dataset, split)


def _wrap(label: str, text: "str | Sequence[str]", width: int = BANNER_WIDTH) -> str:
    """``label`` and ``text`` wrapped to ``width`` columns, later lines indented under the text.

    ``text`` may be a list of items, joined by commas and never broken inside an item.

    >>> print(_wrap("Data:    ", "one two three four", width=19))
    Data:    one two
             three four
    >>> print(_wrap("Tested with: ", ["numpy 2.1", "scipy 1.14"], width=25))
    Tested with: numpy 2.1,
                 scipy 1.14
    """
    nbsp = "\N{NO-BREAK SPACE}"  # textwrap breaks only at ASCII whitespace
    if not isinstance(text, str):
        text = ", ".join(item.replace(" ", nbsp) for item in text)
    lines = textwrap.wrap(text, width=width, initial_indent=label, subsequent_indent=" " * len(label),
                          break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines).replace(nbsp, " ")


def show_source(obj, lines: "tuple[int, int] | None" = None):
    """Display the source code of a library function or class (the single source of truth)."""
    from IPython.display import Markdown, display

    source = inspect.getsource(obj)
    if lines is not None:
        source = "\n".join(source.splitlines()[lines[0] : lines[1]])
    module = inspect.getmodule(obj).__name__
    display(Markdown(f"`{module}.{obj.__name__}`:\n\n```python\n{source}\n```"))


def explorer(draw: Callable, controls: dict, static: Sequence[dict] = ()):
    """An ipywidgets explorer with a static fallback.

    ``draw(**values)`` makes a matplotlib figure for one setting of the ``controls`` (a dict
    of ipywidgets). In a live notebook the widgets steer the figure; in the rendered book,
    which cannot run Python, the figures for the settings in ``static`` are shown instead
    (they are drawn in every case, so the page always has pictures).
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    for values in static:
        draw(**values)
        plt.show()
    try:
        import ipywidgets as widgets
    except ImportError:  # the static figures above stand in
        return None
    output = widgets.interactive_output(lambda **v: (draw(**v), plt.show()), controls)
    box = widgets.VBox([widgets.HBox(list(controls.values())), output])
    display(box)
    return box
