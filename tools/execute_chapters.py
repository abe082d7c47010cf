"""Execute the chapters in order and time each one.

Usage::

    python tools/execute_chapters.py OUT_DIR [book/NN_*.ipynb ...]

Runs in the profile of ``NUCLEITUT_PROFILE``; trained networks go where ``NUCLEITUT_MODELS``
(or the cache) says, so the first run trains them and later runs only load them.
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(out: str, chapters: list[str]) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(c) for c in chapters] or sorted(Path("book").glob("[0-9][0-9]_*.ipynb"))
    total = 0.0
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
        total += seconds
        nbformat.write(notebook, out_dir / path.name)
        print(f"{path.name:40s} {seconds:7.1f} s", flush=True)
    print(f"{'total':40s} {total:7.1f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
