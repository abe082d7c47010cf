"""Strip the chapters' outputs before committing, keeping the checked ones.

Usage::

    python tools/strip_outputs.py book/*.ipynb                  # strip in place
    python tools/strip_outputs.py --executed DIR book/*.ipynb   # also take the outputs of
                                                                 # checked cells from DIR/<name>

Chapters are committed without outputs (the book build executes them), except cells whose
first line is ``# NBVAL_CHECK_OUTPUT``: nbval compares a fresh run against the stored output
of those cells, so they keep an output from an executed copy of the notebook.
"""

import argparse
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)


def strip(path: Path, executed: Path | None) -> None:
    notebook = nbformat.read(path, as_version=4)
    reference = nbformat.read(executed, as_version=4) if executed else None
    checked = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if is_checked(cell) and reference is not None:
            ref = reference.cells[index]
            if ref.source != cell.source:
                raise SystemExit(f"{path}: cell {index} differs from {executed}")
            cell.outputs = [o for o in ref.outputs if o.get("output_type") != "stream" or o.get("name") != "stderr"]
            cell.execution_count = ref.execution_count
            checked += 1
        elif not is_checked(cell):
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)
    print(f"{path}: outputs stripped" + (f", {checked} checked cell(s) kept" if checked else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--executed", type=Path, help="folder with executed copies of the notebooks")
    args = parser.parse_args()
    for path in args.notebooks:
        strip(path, args.executed / path.name if args.executed else None)


if __name__ == "__main__":
    main()
