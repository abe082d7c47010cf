"""The book: chapters are committed clean, and the HTML book builds with warnings as errors.

The chapters themselves run under nbval (``pytest --nbval-lax book``, part of the README's
test command), before this file, so the networks they train are shared with the build, and
the chapters nbval ran without error are not executed again by the build: the root
conftest.py stores them in the build's execution cache (see there).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    assert len(CHAPTERS) == 9
    for chapter in CHAPTERS:
        assert f"book/{chapter.stem}" in toc


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapters_are_committed_without_outputs(chapter):
    notebook = nbformat.read(chapter, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert "notebook.setup()" in code[0].source, "the first code cell prints profile and data"
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, (
            f"{chapter.name}: outputs must be stripped (tools/strip_outputs.py)"
        )
    titles = [line for c in notebook.cells if c.cell_type == "markdown" for line in c.source.splitlines() if re.match(r"# ", line)]
    assert len(titles) == 1, f"{chapter.name}: exactly one '# ' title"
    with open(chapter, encoding="utf-8") as file:  # as committed: nbformat.read would fill in missing ids
        ids = [cell.get("id") for cell in json.load(file)["cells"]]
    assert None not in ids and len(set(ids)) == len(ids), f"{chapter.name}: every cell needs its own id (nbformat 4.5)"


@pytest.mark.slow
def test_html_book_builds_with_warnings_as_errors():
    env = dict(os.environ)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    html = ROOT / "_build" / "html"
    for chapter in CHAPTERS:
        page = (html / "book" / f"{chapter.stem}.html").read_text()
        assert page.count("<img") >= 2, f"{chapter.stem}: the built page shows figures"
        assert "Traceback (most recent call last)" not in page, f"{chapter.stem}: an error cell was rendered"
        mathjax = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, flags=re.IGNORECASE)
        assert mathjax or 'class="math' not in page, f"{chapter.stem}: formulas but no MathJax"
        assert all("://" not in src and not src.startswith("//") for src in mathjax), (
            f"{chapter.stem}: MathJax must come with the book (offline), not from {mathjax}")
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is copied into the built book"


def test_no_function_is_defined_in_more_than_one_chapter():
    """A helper two chapters need lives in the library, once (the d2l lesson)."""
    import ast
    import collections

    defined = collections.defaultdict(set)
    for chapter in CHAPTERS:
        notebook = json.loads(chapter.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    defined[node.name].add(chapter.stem)
    twice = {name: sorted(chapters) for name, chapters in defined.items() if len(chapters) > 1}
    assert not twice, f"defined in more than one chapter (move them into the library): {twice}"
    assert defined, "the check found no function at all: is the notebook parsing broken?"


def test_a_chapter_executed_by_nbval_is_found_by_the_book_build(tmp_path):
    """The root conftest stores nbval's outputs where Jupyter Book's cache looks them up."""
    import importlib.util

    from jupyter_cache import get_cache

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    clean = nbformat.read(CHAPTERS[0], as_version=4)
    executed = nbformat.read(CHAPTERS[0], as_version=4)
    for number, cell in enumerate(c for c in executed.cells if c.cell_type == "code"):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"cell {number}\n")]
    hooks.store_executed_chapter(executed, CHAPTERS[0], seconds=1.0, cache_dir=tmp_path)
    cache = get_cache(str(tmp_path))
    assert cache.match_cache_notebook(clean) is not None, "the build would execute the chapter again"
    _, merged = cache.merge_match_into_notebook(clean)
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert [c.outputs[0]["text"] for c in code] == [f"cell {k}\n" for k in range(len(code))]
    changed = nbformat.read(CHAPTERS[0], as_version=4)
    next(c for c in changed.cells if c.cell_type == "code").source += "\nprint('edited')"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(changed)  # an edited chapter is executed by the build
