"""pytest hooks for the chapters: the book build reuses what nbval executed.

``python tasks.py test`` runs every chapter under nbval (``pytest --nbval-lax book``) and
then builds the HTML book (tests/test_book.py). Without these hooks the build would execute
every chapter a second time (about eight minutes on 2 cores). Instead, when all cells of a
chapter ran without error under nbval, the chapter with nbval's outputs is stored in the
execution cache of Jupyter Book 1.x (jupyter-cache, ``_build/.jupyter_cache``: the folder
myst-nb uses when ``execute_notebooks: cache``). The build then finds the chapter there and
renders those outputs; a chapter that failed, changed or was not run is executed by the build
as before. Nothing else changes: the outputs are those of the same code on the same machine.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
#: Jupyter Book 1.x / myst-nb's default execution cache (next to _build/html).
EXECUTION_CACHE = ROOT / "_build" / ".jupyter_cache"

_failed: set[str] = set()
_outputs: dict[str, dict[int, list]] = {}
_started: dict[str, float] = {}


def _is_nbval_cell(item) -> bool:
    return hasattr(item, "test_outputs") and hasattr(item, "cell_num") and hasattr(item.parent, "nb")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not _is_nbval_cell(item):
        return
    report = outcome.get_result()
    notebook = str(item.parent.path)
    _started.setdefault(notebook, time.time())
    if report.failed or report.skipped:
        _failed.add(notebook)
    elif call.when == "call":
        _outputs.setdefault(notebook, {})[item.cell_num] = list(item.test_outputs or [])


def pytest_runtest_teardown(item, nextitem):
    if not _is_nbval_cell(item) or (nextitem is not None and nextitem.parent is item.parent):
        return  # not a chapter cell, or not the chapter's last cell
    notebook = str(item.parent.path)
    outputs = _outputs.pop(notebook, {})
    if notebook in _failed:
        return
    executed = copy.deepcopy(item.parent.nb)
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    if sorted(outputs) != list(range(len(code_cells))):
        return  # some cell did not run (deselected, -x, ...): let the build execute the chapter
    for number, cell in enumerate(code_cells):
        cell.outputs = outputs[number]
        cell.execution_count = number + 1
    try:
        store_executed_chapter(executed, Path(notebook), time.time() - _started.get(notebook, time.time()))
    except Exception as error:  # only a speed-up: the build then executes the chapter itself
        warnings.warn(f"{notebook}: not stored for the book build ({type(error).__name__}: {error})")


def store_executed_chapter(notebook, path: Path, seconds: float, cache_dir: Path = EXECUTION_CACHE) -> None:
    """Put an executed chapter into the book build's execution cache."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_dir))
    cache.cache_notebook_bundle(
        CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds, "executed_by": "nbval"}),
        check_validity=False,
        overwrite=True,
    )
