"""The rendered book is readable offline and on a phone (issue 12, item 5), checked without a build.

Formulas are typeset by a copy of MathJax that travels with the book (``book/static/mathjax``),
long code lines wrap (``book/static/book.css``) and the chapter banner fits 80 columns.
The HTML build itself is checked in ``test_book.py``.
"""

from pathlib import Path

import pytest
from jupyter_book.config import get_final_config

from nucleitut import config, notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sphinx_config() -> dict:
    """The Sphinx configuration Jupyter Book derives from ``_config.yml`` (as in ``jupyter-book build``)."""
    final, _ = get_final_config(user_yaml=ROOT / "_config.yml", cli_config={"latex_individualpages": False},
                                sourcedir=ROOT)
    return final


def static_file(sphinx_config: dict, name: str) -> Path:
    """The file that Sphinx copies to ``_build/html/_static/<name>``, from the html_static_path folders."""
    found = [ROOT / folder / name for folder in sphinx_config.get("html_static_path", [])
             if (ROOT / folder / name).is_file()]
    assert found, f"{name} is in none of html_static_path {sphinx_config.get('html_static_path')}"
    return found[-1]


def test_mathjax_is_served_from_a_local_copy_in_the_repository(sphinx_config):
    path = sphinx_config.get("mathjax_path", "")
    assert path and "://" not in path and not path.startswith("//"), (
        f"mathjax_path {path!r} must be a file of the book, not a CDN address (formulas offline)")
    script = static_file(sphinx_config, path)
    assert script.name == "tex-chtml.js" and script.stat().st_size > 500_000, "the whole MathJax component"
    folder = script.parent
    assert "Apache License" in (folder / "LICENSE").read_text(), "MathJax's licence travels with its copy"
    fonts = list((folder / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20, "the CHTML output needs its fonts next to the script"
    assert (folder / "input" / "tex" / "extensions" / "boldsymbol.js").is_file(), "extensions loaded on demand"


def test_no_remote_mathjax_is_configured(sphinx_config):
    remote = {key: value for key, value in sphinx_config.items()
              if "mathjax" in key.lower() and "://" in str(value)}
    assert not remote, f"remote MathJax configured: {remote}"
    scripts = [str(js[0] if isinstance(js, (list, tuple)) else js) for js in sphinx_config.get("html_js_files") or []]
    assert not any("mathjax" in js.lower() for js in scripts), (
        f"MathJax must be loaded once, through mathjax_path, not also as {scripts}")


def test_long_code_lines_wrap_through_the_configured_css(sphinx_config):
    css_files = [css[0] if isinstance(css, (list, tuple)) else css for css in sphinx_config.get("html_css_files", [])]
    assert css_files, "html_css_files names the book's style sheet"
    css = "\n".join(static_file(sphinx_config, name).read_text() for name in css_files)
    assert "white-space: pre-wrap" in css


@pytest.mark.parametrize("name", sorted(config.PROFILES))
def test_chapter_banner_fits_eighty_columns(name):
    profile = config.get_profile(name)
    banner = "\n".join([
        notebook._wrap("Profile: ", f"{profile.name} — {profile.description}"),
        notebook._wrap("         ", "664 images, the full data set; split 435 train / 109 validation / 120 test"),
        notebook._wrap("Tested with: ", [f"{k} {v}" for k, v in
                                         {"python": "3.11.7", "backend (tensorflow)": "2.21.0",
                                          "scikit-image": "0.26.0", "matplotlib": "3.11.2",
                                          "numpy": "2.4.6", "scipy": "1.17.1"}.items()]),
    ])
    assert max(len(line) for line in banner.splitlines()) <= notebook.BANNER_WIDTH == 80
    assert "backend (tensorflow) 2.21.0" in banner, "an item of the version list is never split"
    assert profile.description.split()[-1] in banner, "the wrapped banner keeps all its words"
