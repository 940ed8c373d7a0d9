"""The package's layout holds: stage packages import the kernel and themselves, never another
stage (except the contracts listed here), and no module imports lead back to it.

Walks every module's imports (module-level and inside functions) with ast, so an import moved
into a function to hide a circle is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "prefalign"
# A stage may read another stage's contract: what it declares for others, named here one by one.
CONTRACTS = {
    # evaluation judges the synthetic tasks' answers with their verifier
    "evaluation": {"prefalign.data.tasks"},
    # the report states the evaluation's verdict, and the rerun noise floor of the check's expected file
    "report": {"prefalign.evaluation.verdict", "prefalign.evaluation.check"},
    # a run's audit (check, diff, the published digests) holds its metrics to the expected file's bounds,
    # read through the evaluation's check module (the expected file's contract: <source>.<metric>)
    "provenance": {"prefalign.evaluation.check"},
    # on-policy pairs are generated and judged exactly as the evaluation generates and judges its answers
    "onpolicy": {"prefalign.evaluation.generation", "prefalign.evaluation.judges"},
    # config builds every step's settings from the config: each step's Settings class; `init` reads a raw
    # file the way the data stage does (its format, its pair count) through data.inspect; eval.judge auto is
    # resolved by the evaluation stage's own rule (evaluation.judges.choose_judge)
    "config": {"prefalign.data.inspect", "prefalign.data.filters", "prefalign.data.normalize", "prefalign.data.split",
               "prefalign.data.synthetic", "prefalign.evaluation.ab", "prefalign.evaluation.compare",
               "prefalign.evaluation.evaluate", "prefalign.evaluation.judges", "prefalign.evaluation.judge_accuracy",
               "prefalign.report.render", "prefalign.train.reward", "prefalign.train.base_model",
               "prefalign.train.dpo", "prefalign.train.reference", "prefalign.train.sft", "prefalign.train.watch.health",
               "prefalign.train.watch.tracking", "prefalign.publish.card", "prefalign.onpolicy.command",
               "prefalign.onpolicy.plan", "prefalign.onpolicy.sample"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The prefalign modules `path` imports (a `from pkg import name` of a submodule counts as the submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("prefalign"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("prefalign"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def stage(module: str) -> str:
    """The stage package a module belongs to, or 'kernel' for the top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "kernel"


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_stages_import_only_the_kernel_their_own_modules_and_declared_contracts():
    wrong = []
    for module, imported in graph().items():
        mine = stage(module)
        for other in imported:
            theirs = stage(other)
            if other == "prefalign" or theirs in ("kernel", mine) or other in CONTRACTS.get(mine, ()):
                continue
            wrong.append(f"{module} ({mine}) imports {other} ({theirs})")
    assert wrong == []


def test_the_kernel_uses_no_stage():
    wrong = [f"{module} imports {other}" for module, imported in graph().items() if stage(module) == "kernel"
             for other in imported if stage(other) != "kernel" and other != "prefalign"]
    assert wrong == []


def test_no_import_circles():
    edges = graph()
    circles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in sorted(edges.get(module, ())):
            if state.get(other) == "open":
                circles.append(" -> ".join(path[path.index(other):] + [other]))
            elif other not in state:
                visit(other, path + [other])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own submodules is not a circle of their making.
    circles = [c for c in circles if not all(part.startswith(c.split(" -> ")[0]) for part in c.split(" -> "))]
    assert circles == []
