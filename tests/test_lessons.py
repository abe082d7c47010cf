"""Chapters are lessons, not logs (STYLE.md): short enough to read in one sitting.

Per chapter (``book/NN_*.ipynb``):

* the markdown cells hold at most :data:`MAX_WORDS` words in all (about ten minutes of
  reading at 200 words a minute, with the figures),
* no markdown cell holds more than :data:`MAX_CELL_WORDS` words,
* no code cell the reader sees holds more than :data:`MAX_CODE_LINES` lines that are not
  blank, unless it is tagged ``teach`` ("this code is the idea being taught"). A cell is
  hidden when it is tagged ``hide-input``, ``hide-cell``, ``remove-cell`` or ``remove-input``.

A word is a whitespace-separated token holding a letter or a digit, so list markers, table
rules and ``$$`` do not count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

MAX_WORDS = 1800
MAX_CELL_WORDS = 300
MAX_CODE_LINES = 25
HIDDEN = {"hide-input", "hide-cell", "remove-cell", "remove-input"}
TEACH = "teach"


def words(text: str) -> int:
    return sum(1 for token in text.split() if re.search(r"\w", token))


def code_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip())


def cells(chapter: Path) -> list[dict]:
    return json.loads(chapter.read_text(encoding="utf-8"))["cells"]


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _where(number: int, cell: dict) -> str:
    first = next((line for line in _source(cell).splitlines() if line.strip()), "")
    return f"cell {number} ({cell.get('id')}): {first[:60]!r}"


def test_counting_rules():
    assert words("## A title\n\n* two `words`, $$ and | --- |") == 5
    assert code_lines("a = 1\n\n\nb = 2\n   \n") == 2


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_reads_in_one_sitting(chapter):
    total = sum(words(_source(c)) for c in cells(chapter) if c["cell_type"] == "markdown")
    assert total <= MAX_WORDS, f"{chapter.name}: {total} words of markdown, at most {MAX_WORDS}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_no_markdown_cell_is_a_wall_of_text(chapter):
    long = [
        f"{_where(k, c)}: {words(_source(c))} words"
        for k, c in enumerate(cells(chapter))
        if c["cell_type"] == "markdown" and words(_source(c)) > MAX_CELL_WORDS
    ]
    assert not long, f"{chapter.name}: markdown cells over {MAX_CELL_WORDS} words:\n" + "\n".join(long)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_visible_code_is_short_unless_it_is_the_idea(chapter):
    long = [
        f"{_where(k, c)}: {code_lines(_source(c))} lines"
        for k, c in enumerate(cells(chapter))
        if c["cell_type"] == "code" and not _tags(c) & (HIDDEN | {TEACH}) and code_lines(_source(c)) > MAX_CODE_LINES
    ]
    assert not long, (
        f"{chapter.name}: visible code cells over {MAX_CODE_LINES} lines (hide the plumbing with 'hide-input', "
        f"or tag the cell '{TEACH}' if the code is what the chapter teaches):\n" + "\n".join(long)
    )


def _book_timings_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_timings", ROOT / "tools" / "book_timings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_book_timings_add_up_the_cells_of_each_chapter(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" timestamp="2026-12-07T09:10:00+00:00">'
        '<testcase classname="book.01_data.ipynb" name="Cell 0" time="2.25"/>'
        '<testcase classname="book.01_data.ipynb" name="Cell 1" time="1.5"/>'
        '<testcase classname="book.02_first_results.ipynb" name="Cell 0" time="60"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_data" name="test_something" time="99"/>'
        "</testsuite></testsuites>"
    )
    record = _book_timings_tool().write_timings(report, tmp_path / "timings.json", note="a test")
    assert record["chapters"] == {
        "01_data": {"seconds": 3.8, "cells": 2, "failed": 0},
        "02_first_results": {"seconds": 60.0, "cells": 1, "failed": 1},
    }
    assert record["total_seconds"] == 63.8 and record["date"] == "2026-12-07T09:10:00+00:00"
    assert record["cores"] >= 1 and record["cpu"] and record["profile"] == "quick"
    assert json.loads((tmp_path / "timings.json").read_text()) == record


def test_the_teachers_page_has_a_measured_run_time_for_every_chapter():
    timings = json.loads((ROOT / "results" / "book_timings_quick.json").read_text())
    missing = sorted({c.stem for c in CHAPTERS} - set(timings["chapters"]))
    assert not missing, f"no run time for {missing}: run the chapters with --junitxml, then tools/book_timings.py"
