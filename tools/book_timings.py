"""Run time of every chapter, from the JUnit report of a chapter run, for the teachers' page.

Usage::

    pytest --nbval-lax book -p no:cacheprovider --junitxml=book_junit.xml    # the chapter run
    python tools/book_timings.py book_junit.xml                               # -> results/book_timings_quick.json
    python tools/book_timings.py book_junit.xml --profile cpu --note "..."    # another profile

nbval reports every cell of a chapter as one test case with its time, so a chapter's time is
the sum over its cells (the kernel's start included). The file also says when the run started
(the report's timestamp), on which machine (CPU model and cores of the machine this tool runs
on: run it where the chapters ran) and at which commit (``HEAD`` when the file is written, and
whether the working tree had uncommitted changes). ``book/teachers.ipynb`` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A chapter's name in a test case's class name, e.g. ``book.01_data.ipynb`` -> ``01_data``.
NOTEBOOK = re.compile(r"(?:^|[./])([\w-]+)\.ipynb$")


def chapter_timings(junit: str | os.PathLike) -> dict:
    """Seconds, cells and failed cells per notebook, and the run's start, from a JUnit XML report.

    Returns
    -------
    dict
        ``{"started": str or None, "notebooks": {name: {"seconds", "cells", "failed"}}}``, names
        without ``.ipynb`` and in the order the run met them.

    Examples
    --------
    >>> import tempfile
    >>> report = ('<testsuites><testsuite timestamp="2026-12-07T09:10:00">'
    ...           '<testcase classname="book.01_data.ipynb" name="Cell 0" time="2.5"/>'
    ...           '<testcase classname="book.01_data.ipynb" name="Cell 1" time="1.0"><failure/></testcase>'
    ...           '<testcase classname="tests.test_data" name="test_x" time="9"/>'
    ...           '</testsuite></testsuites>')
    >>> with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
    ...     _ = f.write(report)
    >>> chapter_timings(f.name)
    {'started': '2026-12-07T09:10:00', 'notebooks': {'01_data': {'seconds': 3.5, 'cells': 2, 'failed': 1}}}
    """
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    started = next((s.get("timestamp") for s in suites if s.get("timestamp")), None)
    notebooks: dict[str, dict] = {}
    for suite in suites:
        for case in suite.iter("testcase"):
            match = NOTEBOOK.search(case.get("classname", "")) or NOTEBOOK.search(case.get("file", ""))
            if not match:
                continue
            entry = notebooks.setdefault(match.group(1), {"seconds": 0.0, "cells": 0, "failed": 0})
            entry["seconds"] += float(case.get("time") or 0.0)
            entry["cells"] += 1
            entry["failed"] += int(case.find("failure") is not None or case.find("error") is not None)
    for entry in notebooks.values():
        entry["seconds"] = round(entry["seconds"], 1)
    return {"started": started, "notebooks": notebooks}


def machine() -> dict:
    """CPU model and number of cores of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), flags=re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores}


def commit() -> dict:
    """``HEAD`` of the repository and whether the working tree differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}


def write_timings(junit: str | os.PathLike, out: str | os.PathLike, profile: str = "quick", note: str = "") -> dict:
    """Write the timings of the chapters in ``junit`` to ``out`` (JSON) and return them."""
    timings = chapter_timings(junit)
    if not timings["notebooks"]:
        raise ValueError(f"{junit}: no notebook cells in this report (was it written by pytest --nbval-lax?)")
    record = {
        "what": "run time of each notebook under pytest --nbval-lax (sum over its cells)",
        "profile": profile,
        "date": timings["started"],
        **commit(),
        **machine(),
        "source": Path(junit).name,
        "note": note,
        "chapters": timings["notebooks"],
        "total_seconds": round(sum(n["seconds"] for n in timings["notebooks"].values()), 1),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("junit", help="JUnit XML report of pytest --nbval-lax book")
    parser.add_argument("--profile", default="quick", help="profile the chapters ran in (default: quick)")
    parser.add_argument("--out", help="default: results/book_timings_<profile>.json")
    parser.add_argument("--note", default="", help="anything else a reader should know about the run")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "results" / f"book_timings_{args.profile}.json"
    record = write_timings(args.junit, out, args.profile, args.note)
    for name, entry in record["chapters"].items():
        failed = f", {entry['failed']} failed" if entry["failed"] else ""
        print(f"{name:28s} {entry['seconds']:8.1f} s ({entry['cells']} cells{failed})")
    print(f"{'total':28s} {record['total_seconds']:8.1f} s on {record['cpu']} ({record['cores']} cores) -> {out}")


if __name__ == "__main__":
    main()
