#!/usr/bin/env bash
# Build the rendered book from chapters executed elsewhere, without executing anything: the
# GPU edition from a run of tools/gpu_book.sh (results/gpu_book_<date>/), with warnings as errors.
#
#   bash tools/build_from_executed.sh results/gpu_book_<date> [OUT]     (OUT default: _build/gpu_edition)
#
# RUN/chapters/*.ipynb are the executed chapters; RUN/sources/ holds the book's other sources
# as they were at the run (_config.yml, _toc.yml, book/*.md, book/*.bib; the working tree's
# are used where a run has none). book/static (MathJax, CSS) comes from the working tree.
# The build runs in a temporary copy with `execute_notebooks: "off"`; every chapter of the
# table of contents must have been executed in the run. Open OUT/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: build_from_executed.sh RUN_FOLDER [OUT]}
OUT=${2:-_build/gpu_edition}
JB=${JUPYTER_BOOK:-.venv/bin/jupyter-book}
[ -x "$JB" ] || JB=jupyter-book
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
[ -d "$RUN/chapters" ] || { echo "$RUN/chapters: no executed chapters" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/book"
cp _config.yml _toc.yml "$tmp/"
cp book/*.md book/*.bib "$tmp/book/"
cp -r book/static "$tmp/book/static"
if [ -d "$RUN/sources" ]; then
  cp -r "$RUN/sources/." "$tmp/"
fi
cp "$RUN"/chapters/*.ipynb "$tmp/book/"
"$PY" - "$tmp" "$RUN" <<'EOF'
import json, re, sys
from pathlib import Path

tmp, run = Path(sys.argv[1]), Path(sys.argv[2])
config = (tmp / "_config.yml").read_text()
config, n = re.subn(r"(?m)^(\s*execute_notebooks:\s*).*$", r'\1"off"', config)
if n != 1:
    sys.exit("_config.yml: no execute_notebooks setting to turn off")
summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
if summary:
    edition = f"GPU edition: {summary.get('device', '?')}, {summary.get('date', '?')[:10]}, {summary.get('profile', '?')} profile"
    config = re.sub(r"(?m)^title:\s*(.*)$", lambda m: f"title: {json.dumps(m.group(1).strip().strip(chr(34)) + ' (' + edition + ')')}", config, count=1)
(tmp / "_config.yml").write_text(config)
toc = (tmp / "_toc.yml").read_text()
missing = [f for f in re.findall(r"file:\s*(\S+)", toc)
           if not (tmp / f"{f}.md").exists() and not (tmp / f"{f}.ipynb").exists()]
if missing:
    sys.exit(f"not executed in {run}: {', '.join(missing)}")
unrun = [p.name for p in (tmp / "book").glob("*.ipynb")
         if any(c["cell_type"] == "code" and c.get("source") and c.get("execution_count") is None
                for c in json.loads(p.read_text())["cells"])]
if unrun:
    sys.exit(f"chapters with cells that did not run: {', '.join(unrun)}")
EOF
"$JB" build "$tmp" -W -n --keep-going
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
cp -r "$tmp/_build/html" "$OUT"
echo "the GPU edition: $OUT/index.html"
