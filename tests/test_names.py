"""Every library name the chapters and the README write out resolves.

Chapters and the README name library code in backticks, ``predict.combine_predictions``,
``nucleitut.pipeline.Pipeline`` or ``Pipeline.labels_from``. When the library moves a name
(CHANGELOG.md lists where), the text must follow. This test finds every such reference and
resolves it: the first part is a module of ``nucleitut`` (``nucleitut.<module>`` or just
``<module>``), a public class of the library (``Pipeline``, ``SegmentOptions``, ...), or a
module or class that the CHANGELOG's tables list among the old names and that no longer exists
(``segment.write_outputs``: always stale). The module is imported and the rest looked up with
``getattr``. A class attribute counts too when
it is an instance attribute: a dataclass field or an attribute ``__init__`` sets.

Scanned: the markdown cells of ``book/*.ipynb`` (backticked spans) and the comments of their
code cells (dotted names, backticks or not; the code itself runs under nbval), ``book/*.md``
and ``README.md`` (backticked spans).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import json
import pkgutil
import re
import tokenize
from pathlib import Path

import pytest

import nucleitut

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md"]

MODULES = sorted(m.name for m in pkgutil.iter_modules(nucleitut.__path__) if not m.name.startswith("_"))
#: A dotted name not preceded by a name character, a dot, a slash, a closing bracket or a
#: hyphen: ``config.TABLE3["M2"].target_params`` yields ``config.TABLE3`` only, and paths
#: such as ``nucleitut/pipeline.py`` nothing.
DOTTED = re.compile(r"(?<![\w./\]\)\-])((?:[A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)+)")
BACKTICKED = re.compile(r"`([^`\n]+)`")
#: ``config.json``, ``history.csv``: file names, not library names.
FILE_ENDINGS = {"json", "csv", "py", "png", "jpg", "tif", "tiff", "keras", "md", "yml", "yaml", "txt", "zip",
                "ipynb", "npz", "npy", "html", "toml", "log", "xml", "gz", "h5"}


def former_names() -> set[str]:
    """Modules and classes that the CHANGELOG's tables list as old names and that are gone
    (``segment`` of ``segment.segment_image``, ``Segmenter`` of ``Segmenter.probabilities``):
    a reference that starts with one of them is stale."""
    current = set(MODULES) | set(public_classes()) | {"nucleitut"}
    former = set()
    for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or len(cells) < 2:
            continue
        for span in BACKTICKED.findall(cells[0]):
            former |= {name.split(".")[0] for name in DOTTED.findall(span)} - current
    return former


def public_classes() -> dict[str, list[type]]:
    """Class name -> the classes of that name defined in a nucleitut module."""
    classes: dict[str, list[type]] = {}
    for name in MODULES:
        module = importlib.import_module(f"nucleitut.{name}")
        for attribute, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not attribute.startswith("_"):
                classes.setdefault(attribute, []).append(value)
    return classes


def _has_attribute(obj, attribute: str) -> bool:
    if hasattr(obj, attribute):
        return True
    if not inspect.isclass(obj):
        return False
    if dataclasses.is_dataclass(obj) and attribute in {f.name for f in dataclasses.fields(obj)}:
        return True
    for klass in obj.__mro__:
        if attribute in getattr(klass, "__annotations__", {}):
            return True
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if re.search(rf"\bself\.{re.escape(attribute)}\s*(?::[^=\n]+)?=(?!=)", source):
            return True
    return False


def resolve(reference: str, classes: dict[str, list[type]]) -> bool:
    """Whether ``reference`` names something that exists (see the module docstring)."""
    parts = reference.split(".")
    if parts[0] == "nucleitut":
        parts = parts[1:]
        if parts and parts[0] not in MODULES:
            try:
                starts = [getattr(nucleitut, parts[0])]
            except AttributeError:
                return False
            parts = parts[1:]
        elif parts:
            starts = [importlib.import_module(f"nucleitut.{parts[0]}")]
            parts = parts[1:]
        else:
            return True
    elif parts[0] in MODULES:
        starts, parts = [importlib.import_module(f"nucleitut.{parts[0]}")], parts[1:]
    else:
        starts, parts = list(classes.get(parts[0], [])), parts[1:]
    return any(_walk(start, parts) for start in starts)


def _walk(obj, parts: list[str]) -> bool:
    for k, part in enumerate(parts):
        if not _has_attribute(obj, part):
            return False
        if not hasattr(obj, part):  # an instance attribute: nothing further to look into
            return k == len(parts) - 1
        obj = getattr(obj, part)
    return True


def is_library_reference(name: str, classes, former=frozenset()) -> bool:
    parts = name.split(".")
    if parts[-1] in FILE_ENDINGS:
        return False
    return parts[0] == "nucleitut" or parts[0] in MODULES or parts[0] in classes or parts[0] in former


def _comments(source: str) -> list[str]:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [line.split("#", 1)[1] for line in lines if "#" in line]
    return [token.string for token in tokens if token.type == tokenize.COMMENT]


def texts(path: Path):
    """(where, text, backticked_only) of every piece of ``path`` to scan."""
    if path.suffix == ".ipynb":
        for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                yield f"cell {number}", source, True
            elif cell["cell_type"] == "code":
                for comment in _comments(source):
                    yield f"cell {number} (comment)", comment, False
    else:
        yield "", path.read_text(encoding="utf-8"), True


def references(text: str, backticked_only: bool, classes, former=frozenset()) -> list[str]:
    spans = BACKTICKED.findall(text) if backticked_only else [text]
    found = []
    for span in spans:
        for name in DOTTED.findall(span):
            if is_library_reference(name, classes, former) and name not in found:
                found.append(name)
    return found


@pytest.fixture(scope="module")
def classes():
    return public_classes()


@pytest.fixture(scope="module")
def former():
    return former_names()


def test_scanner_reports_a_moved_name_and_accepts_the_new_one(classes):
    text = "Normalise with `predict.normalize(image)`, then `data.normalize`; see `nucleitut/data.py` and `config.json`."
    found = references(text, True, classes)
    assert found == ["predict.normalize", "data.normalize"]
    assert [resolve(name, classes) for name in found] == [False, True]


def test_scanner_resolves_classes_instance_attributes_and_the_package(classes):
    for name in ("Pipeline.labels_from", "Pipeline.networks", "Segmentation.labels", "SegmentOptions.tta",
                 "nucleitut.segment", "nucleitut.pipeline.Pipeline.segment", "config.POSTPROCESS_DEFAULTS"):
        assert resolve(name, classes), name
    for name in ("Pipeline.segmenter", "nucleitut.Segmenter", "evaluation.Segmenter", "config.Pipeline"):
        assert not resolve(name, classes), name


def test_names_the_changelog_retired_are_stale(classes, former):
    assert {"segment", "Segmenter"} <= former
    found = references("Write them with `segment.write_outputs` or `outputs.write_outputs`.", True, classes, former)
    assert [(name, resolve(name, classes)) for name in found] == [("segment.write_outputs", False), ("outputs.write_outputs", True)]


def test_comments_are_scanned_without_backticks(classes):
    cell = 'x = 1  # data.normalize, as predict.normalize did ("#" in a string is not a comment)\ny = "# evaluation.x"'
    found = [name for comment in _comments(cell) for name in references(comment, False, classes)]
    assert found == ["data.normalize", "predict.normalize"]


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_every_library_name_in_the_text_resolves(path, classes, former):
    unresolved = [
        f"{path.relative_to(ROOT)} {where}: `{name}`".replace(" :", ":")
        for where, text, backticked_only in texts(path)
        for name in references(text, backticked_only, classes, former)
        if not resolve(name, classes)
    ]
    assert not unresolved, "names that do not resolve (CHANGELOG.md says where they moved):\n" + "\n".join(unresolved)
