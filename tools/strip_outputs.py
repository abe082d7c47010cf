"""Strip the chapters' outputs before committing.

Usage::

    python tools/strip_outputs.py book/*.ipynb

Chapters are committed without outputs: the book build and nbval execute them, and the
checks a chapter makes are ``assert`` statements in its cells.
"""

import argparse
from pathlib import Path

import nbformat


def strip(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)
    print(f"{path}: outputs stripped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args().notebooks:
        strip(path)


if __name__ == "__main__":
    main()
