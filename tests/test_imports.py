"""The library's imports follow the data flow.

The stages below are the order in which data passes through the library (README, "Layout"). A
module may import modules of earlier stages only: never a later stage, never one of its own
stage, never a private name (``_x``) of another module. Imports inside functions count as
much as those at the top of a module: a function-level import hides an edge, it does not
remove it.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nucleitut"

#: The allowed order, earliest first; modules of one stage do not import each other.
STAGES = [
    ["config"],
    ["images"],
    ["data"],
    ["targets"],
    ["unet", "losses"],
    ["training"],
    ["predict"],
    ["postprocess"],
    ["metrics", "blocks", "sizing", "classical", "pretrained"],
    ["pipeline"],
    ["records", "volume", "plotting"],
    ["evaluation"],
    ["outputs", "finetune", "notebook", "checks"],
    ["__main__", "__init__"],
]
LEVEL = {module: level for level, modules in enumerate(STAGES) for module in modules}


def internal_imports(path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import of a nucleitut module in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:  # from . import a, b
                found += [(alias.name, None, node.lineno) for alias in node.names]
            elif node.level == 1 or (node.module or "").startswith("nucleitut."):
                module = node.module.removeprefix("nucleitut.") if node.level == 0 else node.module
                found += [(module.split(".")[0], alias.name, node.lineno) for alias in node.names]
            elif node.level == 0 and node.module == "nucleitut":
                found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[1], None, node.lineno) for alias in node.names
                      if alias.name.startswith("nucleitut.")]
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_every_module_has_a_stage():
    assert {path.stem for path in modules()} == set(LEVEL), "add new modules to STAGES (and the README's layout)"


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.stem)
def test_imports_go_to_earlier_stages_only(path):
    problems = []
    for module, name, line in internal_imports(path):
        if module == path.stem:
            continue
        if module not in LEVEL:
            problems.append(f"line {line}: imports unknown module {module}")
        elif LEVEL[module] >= LEVEL[path.stem]:
            problems.append(f"line {line}: imports {module} (stage {LEVEL[module]}), not before {path.stem} (stage {LEVEL[path.stem]})")
        if name is not None and name.startswith("_") and name != "__version__":
            problems.append(f"line {line}: imports the private name {module}.{name}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_import_graph_has_no_cycle():
    graph = {path.stem: {m for m, _, _ in internal_imports(path) if m != path.stem} for path in modules()}
    visiting, done = set(), set()

    def visit(node, trail):
        if node in visiting:
            raise AssertionError("import cycle: " + " -> ".join(trail + [node]))
        if node in done or node not in graph:
            return
        visiting.add(node)
        for other in sorted(graph[node]):
            visit(other, trail + [node])
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("from . import data\n\ndef f():\n    from .pipeline import Pipeline\n    import nucleitut.sizing\n")
    assert sorted(internal_imports(source)) == [("data", None, 1), ("pipeline", "Pipeline", 4), ("sizing", None, 5)]
