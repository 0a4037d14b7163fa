"""interp/ reads as the data path: layers whose imports only point down, no cycles, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "interp"
SCRIPTS = ROOT.parent / "experiments"
# which packages each layer may import from (besides itself and the root `interp`, home of InterpError)
ALLOWED = {
    "loop": set(),
    "organism": {"loop"},
    "mech": {"loop"},
    "plan": {"loop"},
    "study": {"loop", "mech", "organism", "plan"},
    "stages": {"loop", "mech", "organism", "plan", "study"},
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_SCRIPT_LINES = 400, 60, 80


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every interp module `path` imports, at the top or inside a function body."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("interp")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("interp"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs or {node.module}
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in g.items():
        own = layer(mod)
        for dep in deps:
            target = layer(dep)
            if own == "root" and dep != "interp":
                bad.append(f"{mod} -> {dep}")
            elif own != "root" and target not in {own, "root"} | ALLOWED[own]:
                bad.append(f"{mod} -> {dep}")
    return bad


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected start found by depth-first search (empty if the graph is acyclic)."""
    state, found = {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    return found


def test_the_layers_exist_and_import():
    import interp.loop
    import interp.mech
    import interp.organism
    import interp.plan
    import interp.stages
    import interp.study  # noqa: F401

    assert {layer(m) for m in modules()} == {"root", *ALLOWED}


def test_imports_only_point_down_and_form_no_cycle():
    g = graph()
    assert upward_imports(g) == []
    assert cycles(g) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    g = {"interp.loop.a": {"interp.mech.b"}, "interp.mech.b": {"interp.loop.a"}, "interp": set()}
    assert upward_imports(g) == ["interp.loop.a -> interp.mech.b"]
    assert cycles(g) == [["interp.loop.a", "interp.mech.b", "interp.loop.a"]]


def test_imports_inside_functions_are_seen(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from interp.study import sweep\n    import interp.mech.patching\n")
    known = {"interp.study.sweep", "interp.mech.patching"}
    assert imports(f, known) == known


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_and_functions_stay_small(name):
    path = modules()[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name} has {len(text.splitlines())} lines"
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_interp_import_hides_in_a_function_body():
    hidden = []
    for name, path in modules().items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("interp"):
                        hidden.append(f"{name}.{fn.name}: from {node.module}")
                    elif isinstance(node, ast.Import) and any(
                        a.name.startswith("interp") for a in node.names
                    ):
                        hidden.append(f"{name}.{fn.name}: import")
    assert hidden == []


def script_imports(path: Path) -> set[str]:
    """Every module under experiments/ that the script at `path` imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module == "experiments":
            names = [f"experiments.{a.name}" for a in node.names]  # from experiments import rank_sweep
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        out |= {n for n in names if n == "experiments" or n.startswith("experiments.")}
    return out


def test_no_script_imports_another_script():
    """Scripts are thin: each calls its stage in interp/, never another script."""
    found = {p.stem: script_imports(p) for p in SCRIPTS.glob("*.py")}
    assert len(found) > 10
    assert {name: deps for name, deps in found.items() if deps} == {}


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.stem)
def test_scripts_stay_thin(path):
    """A script parses its config, calls its stage and says where the results went: the logic is in interp/."""
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_SCRIPT_LINES, (
        f"experiments/{path.name} has {lines} lines; move its logic into interp/"
    )


def test_the_script_check_sees_every_form_of_import(tmp_path):
    f = tmp_path / "s.py"
    f.write_text(
        "import experiments.a\nfrom experiments import b\nfrom experiments.c import main\n"
        "def f():\n    from experiments.d import x\n"
    )
    assert script_imports(f) == {"experiments.a", "experiments.b", "experiments.c", "experiments.d"}
