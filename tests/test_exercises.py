"""Exercises with solutions, and the teacher's exercise-only export (tools/make_exercises.py).

Every chapter ends with exercises: a markdown cell tagged ``exercise`` followed by one or
more code cells tagged ``solution`` and ``hide-cell`` (collapsed in the rendered book; nbval
runs them with the chapter). The export removes exactly the solution cells.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def _tool():
    spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools" / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_chapter_has_exercises_each_followed_by_a_collapsed_solution(chapter):
    cells = nbformat.read(chapter, as_version=4).cells
    exercises = [k for k, cell in enumerate(cells) if "exercise" in _tags(cell)]
    assert len(exercises) >= 2, f"{chapter.name}: at least two exercises"
    for k in exercises:
        assert cells[k].cell_type == "markdown", f"{chapter.name}: cell {k}: an exercise is a markdown cell"
        following = cells[k + 1] if k + 1 < len(cells) else None
        assert following is not None and following.cell_type == "code" and "solution" in _tags(following), (
            f"{chapter.name}: exercise in cell {k} is not followed by a solution cell"
        )
    for cell in cells:
        if "solution" in _tags(cell):
            assert cell.cell_type == "code" and "hide-cell" in _tags(cell), (
                f"{chapter.name}: a solution is a code cell tagged 'hide-cell' (collapsed in the book)"
            )
            assert "assert" in cell.source, f"{chapter.name}: a solution checks its result with an assert"


def test_export_removes_every_solution_and_keeps_every_other_cell(tmp_path):
    written = _tool().write_exercises(tmp_path)
    assert sorted(p.name for p in written) == [c.name for c in CHAPTERS]
    for chapter in CHAPTERS:
        original = nbformat.read(chapter, as_version=4).cells
        exported = nbformat.read(tmp_path / chapter.name, as_version=4).cells
        assert not any("solution" in _tags(cell) for cell in exported), f"{chapter.name}: a solution cell was exported"
        kept = [cell for cell in original if "solution" not in _tags(cell)]
        assert [(c.get("id"), c.cell_type, c.source, _tags(c)) for c in exported] == [
            (c.get("id"), c.cell_type, c.source, _tags(c)) for c in kept
        ], f"{chapter.name}: the export must keep every other cell unchanged"
        exported_text = "\n".join(cell.source for cell in exported)
        for cell in original:
            if "solution" in _tags(cell):
                assert cell.source.strip() not in exported_text, f"{chapter.name}: a solution's source was exported"
        assert all(not c.get("outputs") for c in exported if c.cell_type == "code")


def test_export_command_line_writes_the_given_chapters(tmp_path):
    _tool().main([str(tmp_path), str(CHAPTERS[0])])
    assert [p.name for p in tmp_path.iterdir()] == [CHAPTERS[0].name]


@pytest.mark.slow
def test_exported_chapter_1_runs_up_to_its_first_exercise(tmp_path):
    from nbclient import NotebookClient

    _tool().write_exercises(tmp_path, [CHAPTERS[0]])
    notebook = nbformat.read(tmp_path / CHAPTERS[0].name, as_version=4)
    first = next(k for k, cell in enumerate(notebook.cells) if "exercise" in _tags(cell))
    notebook.cells = notebook.cells[:first]
    # The kernel inherits this process' environment: profile, data and models folder.
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
