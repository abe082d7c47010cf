"""Set up and run nucleitut with nothing but Python 3.11: ``python3.11 tasks.py book|test``.

* ``book``: creates ``.venv`` (once), installs the project and builds the HTML book with
  every chapter executed (``_build/html/index.html``).
* ``test``: creates ``.venv`` (once), installs the test tools and runs the test suite:
  the library tests, every chapter with nbval, and the book build with warnings as errors.

Options: ``--profile quick|full`` (default: ``$NUCLEITUT_PROFILE`` or ``quick``) and
``--data PATH_OR_URL`` (a folder or zip of BBBC038v1 stage1_train in the Kaggle layout;
sets ``NUCLEITUT_DATA``). Extra arguments after ``--`` go to pytest or jupyter-book.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("NUCLEITUT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_environment(requirements: str) -> None:
    """Create the virtual environment and install ``requirements`` unless already done."""
    stamp = VENV / f".installed-{Path(requirements).stem}"
    wanted = hashlib.sha256(
        b"".join((ROOT / name).read_bytes() for name in ("requirements.txt", requirements, "pyproject.toml"))
    ).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"Creating the virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-r", str(ROOT / requirements), "-e", str(ROOT)], check=True)
    stamp.write_text(wanted)


def run(command: list[str], env: dict) -> int:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["book", "test"])
    parser.add_argument("--profile", choices=["quick", "full", "cpu"], default=os.environ.get("NUCLEITUT_PROFILE", "quick"))
    parser.add_argument("--data", help="folder, zip or URL of BBBC038v1 stage1_train (sets NUCLEITUT_DATA)")
    parser.add_argument("extra", nargs="*", help="arguments passed on (after --)")
    args = parser.parse_args(argv)

    env = dict(os.environ, NUCLEITUT_PROFILE=args.profile, PYTHONUNBUFFERED="1")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.data:
        env["NUCLEITUT_DATA"] = str(Path(args.data).resolve()) if "://" not in args.data else args.data
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")

    if args.task == "book":
        ensure_environment("requirements.txt")
        code = run([str(BIN / "jupyter-book"), "build", ".", *args.extra], env)
        if code == 0:
            print(f"The book is at {ROOT / '_build' / 'html' / 'index.html'}")
        return code
    ensure_environment("requirements-test.txt")
    # Chapters first (nbval executes them and trains the shared networks), then the library
    # tests and the book build, which reuses the trained networks.
    return run([str(BIN / "python"), "-m", "pytest", "--nbval-lax", "book", "tests", "nucleitut", *args.extra], env)


if __name__ == "__main__":
    sys.exit(main())
