"""Write the exercise-only copies of the chapters: every solution cell removed.

Usage::

    python tools/make_exercises.py OUTDIR            # every chapter of book/
    python tools/make_exercises.py OUTDIR book/03_instance_segmentation.ipynb

Two kinds of work for students carry solutions (code cells tagged ``solution`` and
``hide-cell``; the rendered book shows them collapsed):

* **tasks** (the DLMBL pattern), where the chapter teaches an idea: a markdown cell tagged
  ``task`` says what to write, with its inputs and outputs; a code cell tagged ``task``
  holds the skeleton (signature, docstring, ``...``); the solution cells redefine the
  function; a check cell hands it to a checker of :mod:`nucleitut.checks`;
* **exercises** at the end of each chapter: a markdown cell tagged ``exercise`` followed by
  its solution.

A teacher hands out the copies this script writes to ``OUTDIR``: the same notebooks, under
the same names, without the cells tagged ``solution`` and without outputs. Every other cell,
the task skeletons and check cells included, stays as it is. A copy therefore runs from the
top like the chapter, with ``nucleitut`` installed, until the first check cell, which stops
with the checker's ``not done yet: ...`` until the student has written the function.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_TAG = "solution"
TASK_TAG = "task"


def is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def exercise_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` without solution cells and without outputs."""
    copy = nbformat.from_dict(notebook)
    copy.cells = [cell for cell in copy.cells if not is_solution(cell)]
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    copy.metadata.pop("widgets", None)
    nbformat.validate(copy)
    return copy


def write_exercises(out_dir: str | Path, chapters: list[Path] | None = None) -> list[Path]:
    """Write the exercise-only copy of every chapter to ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chapters = chapters or sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    written = []
    for chapter in chapters:
        notebook = nbformat.read(chapter, as_version=4)
        copy = exercise_notebook(notebook)
        target = out_dir / Path(chapter).name
        nbformat.write(copy, target)
        removed = len(notebook.cells) - len(copy.cells)
        tasks = sum(1 for cell in copy.cells if cell.cell_type == "code" and TASK_TAG in cell.get("metadata", {}).get("tags", []))
        print(f"{target}: {removed} solution cells removed, {tasks} task skeletons kept")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for the exercise-only notebooks")
    parser.add_argument("chapters", nargs="*", type=Path, help="chapters (default: every chapter of book/)")
    args = parser.parse_args(argv)
    write_exercises(args.out_dir, args.chapters or None)


if __name__ == "__main__":
    main()
