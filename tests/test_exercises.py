"""Tasks and exercises with solutions, and the teacher's exercise-only export
(tools/make_exercises.py).

Chapters 1 to 6 hold tasks (the DLMBL pattern): a markdown cell tagged ``task``, a code cell
tagged ``task`` with the skeleton of a function (docstring and ``...``), the solution in code
cells tagged ``solution`` and ``hide-cell``, and a check cell that hands the function to
``nucleitut.checks``. Every chapter ends with exercises: a markdown cell tagged ``exercise``
followed by one or more solution cells (collapsed in the rendered book; nbval runs them with
the chapter). The export removes exactly the solution cells, so an exported chapter stops at
its first check cell with the checker's "not done yet".
"""

import ast
import importlib.util
from pathlib import Path

import nbformat
import numpy as np
import pytest

from nucleitut import checks, config, targets, training

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
TASK_CHAPTERS = [c for c in CHAPTERS if c.stem[:2] in {"01", "02", "03", "04", "05", "06"}]


def _tool():
    spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools" / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def _functions(source):
    return {node.name: node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)}


def _is_skeleton(function):
    """A docstring and ``...``, nothing else."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return len(body) == 1 and isinstance(body[0], ast.Expr) and body[0].value.value is Ellipsis


def _tasks(cells):
    """``(markdown, skeleton, solutions, check)`` cell indices of every task of a chapter."""
    found = []
    for k, cell in enumerate(cells):
        if cell.cell_type == "code" and "task" in _tags(cell):
            solutions = []
            j = k + 1
            while j < len(cells) and "solution" in _tags(cells[j]):
                solutions.append(j)
                j += 1
            found.append((k - 1, k, solutions, j))
    return found


def _task_solution_cells(cells):
    return {j for _, _, solutions, _ in _tasks(cells) for j in solutions}


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
    of_tasks = _task_solution_cells(cells)
    for k, cell in enumerate(cells):
        if "solution" in _tags(cell):
            assert cell.cell_type == "code" and "hide-cell" in _tags(cell), (
                f"{chapter.name}: a solution is a code cell tagged 'hide-cell' (collapsed in the book)"
            )
            if k not in of_tasks:  # a task's solution is checked by the check cell after it
                assert "assert" in cell.source, f"{chapter.name}: a solution checks its result with an assert"


def test_chapters_1_to_6_hold_at_least_eight_tasks():
    counts = {c.stem: len(_tasks(nbformat.read(c, as_version=4).cells)) for c in TASK_CHAPTERS}
    assert len(counts) == 6 and all(counts.values()), f"every chapter 1-6 has a task: {counts}"
    assert sum(counts.values()) >= 8, counts


@pytest.mark.parametrize("chapter", TASK_CHAPTERS, ids=[c.stem for c in TASK_CHAPTERS])
def test_every_task_has_a_description_a_skeleton_a_hidden_solution_and_a_check(chapter):
    cells = nbformat.read(chapter, as_version=4).cells
    defined_anywhere = {}
    for markdown, skeleton, solutions, check in _tasks(cells):
        where = f"{chapter.name}, task in cell {skeleton}"
        assert markdown >= 0 and cells[markdown].cell_type == "markdown" and "task" in _tags(cells[markdown]), (
            f"{where}: the skeleton follows a markdown cell tagged 'task' that says what to write"
        )
        assert "**input**" in cells[markdown].source and "**output**" in cells[markdown].source, (
            f"{where}: the task names the inputs and outputs"
        )
        skeletons = _functions(cells[skeleton].source)
        assert skeletons and all(_is_skeleton(f) for f in skeletons.values()), (
            f"{where}: the task cell defines functions whose body is a docstring and `...`"
        )
        assert all(ast.get_docstring(f) for f in skeletons.values()), f"{where}: every skeleton has a docstring"
        assert all(name.startswith("my_") for name in skeletons), (
            f"{where}: the student's functions are called my_..., so they never shadow the chapter's names"
        )
        assert solutions, f"{where}: a solution follows the skeleton"
        solved = {}
        for j in solutions:
            assert cells[j].cell_type == "code" and "hide-cell" in _tags(cells[j]), f"{where}: solutions are collapsed"
            solved.update(_functions(cells[j].source))
        assert set(skeletons) <= set(solved) and not any(_is_skeleton(solved[n]) for n in skeletons), (
            f"{where}: the solution redefines every function of the skeleton with a body"
        )
        assert check < len(cells) and cells[check].cell_type == "code" and "checks.check_" in cells[check].source, (
            f"{where}: a check cell calling nucleitut.checks follows the solution"
        )
        assert any(name in cells[check].source for name in skeletons), f"{where}: the check cell checks the function"
        for name in skeletons:
            assert name not in defined_anywhere, f"{where}: {name} is also the task of cell {defined_anywhere[name]}"
            defined_anywhere[name] = skeleton


def _task_namespace():
    """What the chapters define before their tasks and the task cells use."""
    import keras
    from scipy import ndimage as ndi

    return {"keras": keras, "np": np, "ndi": ndi, "targets": targets, "training": training, "config": config,
            "cfg": config.training_config("B1", "quick")}


TASKS = [
    (chapter, number)
    for chapter in TASK_CHAPTERS
    for number in range(len(_tasks(nbformat.read(chapter, as_version=4).cells)))
]


@pytest.mark.parametrize("chapter, number", TASKS, ids=[f"{c.stem[:2]}-task{n + 1}" for c, n in TASKS])
def test_a_task_says_not_done_yet_for_its_skeleton_and_passes_with_its_solution(chapter, number, capsys):
    cells = nbformat.read(chapter, as_version=4).cells
    _, skeleton, solutions, check = _tasks(cells)[number]
    namespace = _task_namespace()
    exec(cells[skeleton].source, namespace)
    with pytest.raises(checks.CheckFailed, match=r"^not done yet: "):
        exec(cells[check].source, namespace)
    for j in solutions:
        exec(cells[j].source, namespace)
    exec(cells[check].source, namespace)
    assert capsys.readouterr().out.strip(), "the check prints what it found"


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
def test_exported_chapter_1_runs_until_its_first_check_which_says_not_done_yet(tmp_path, monkeypatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    _tool().write_exercises(tmp_path, [CHAPTERS[0]])
    notebook = nbformat.read(tmp_path / CHAPTERS[0].name, as_version=4)
    first_check = _tasks(notebook.cells)[0][3]
    assert "checks.check_" in notebook.cells[first_check].source
    # The kernel inherits this process' environment: the quick profile, its data and models folder.
    monkeypatch.setenv("NUCLEITUT_PROFILE", "quick")
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(ROOT / "book")}})
    with pytest.raises(CellExecutionError) as failure:
        client.execute()
    assert "not done yet" in str(failure.value)
    for k, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if k < first_check:
            assert cell.execution_count is not None and not errors, f"cell {k} before the first check must run cleanly"
        elif k == first_check:
            assert errors and errors[0].ename == "CheckFailed" and errors[0].evalue.startswith("not done yet:")
        else:
            assert cell.execution_count is None, f"cell {k} after the failing check must not have run"
