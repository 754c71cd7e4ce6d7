"""The import contract: layers that import only downward, and no import circles.

Every import statement counts (module level, inside functions, under ``TYPE_CHECKING``), read
from the source as the package-dir mapping installs it: ``envs/`` is ``blis_gym.envs`` and so
on. A new package must be given a floor here before anything can import it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folder -> the package it installs as (pyproject's [tool.setuptools] package-dir).
MAPPING = {
    "blis_gym": "blis_gym",
    "envs": "blis_gym.envs",
    "baselines": "blis_gym.baselines",
    "agents": "blis_gym.agents",
    "configs": "blis_gym.configs",
}

# Floors, bottom to top. A module may import from its own package and from any lower floor;
# packages that share a floor are independent of each other, except on the utilities floor.
UTILITIES = (
    "blis_gym.errors",
    "blis_gym.fileio",
    "blis_gym.forking",
    "blis_gym.gcpause",
    "blis_gym.gomath",
    "blis_gym.goparse",
    "blis_gym.gorand",
    "blis_gym.distributed",
)
LAYERS: tuple[tuple[str, ...], ...] = (
    UTILITIES,
    ("blis_gym.engine",),
    ("blis_gym.policies",),
    ("blis_gym.config",),
    ("blis_gym.workload", "blis_gym.cluster"),
    ("blis_gym.plan",),
    ("blis_gym.report",),
    # the commands' libraries
    ("blis_gym.sweep", "blis_gym.serve", "blis_gym.observe", "blis_gym.calibrate", "blis_gym.examples"),
    # the RL layer, above the core: the core never imports it
    ("blis_gym.envs", "blis_gym.baselines"),
    ("blis_gym.agents",),
    # the shell: mounts the core's commands and the RL layer's
    ("blis_gym.cli",),
    ("blis_gym.__main__",),
)
RL_LAYER = ("blis_gym.envs", "blis_gym.baselines", "blis_gym.agents")


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in MAPPING.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([package, *parts])] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported project module, line) for every import statement in ``path``."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                out.append((target, node.lineno))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _group(module: str) -> tuple[int, str] | None:
    """(floor, package) of a module; None for the root package and the data package."""
    for floor, packages in enumerate(LAYERS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return floor, package
    return None


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def test_every_module_has_a_floor():
    unplaced = [m for m in MODULES if _group(m) is None and m not in ("blis_gym", "blis_gym.configs")]
    assert not unplaced, f"give these modules a floor in LAYERS: {unplaced}"


def test_imports_run_only_downward_and_siblings_stay_independent():
    bad = []
    for module, imports in GRAPH.items():
        here = _group(module)
        for target, line in imports:
            there = _group(target)
            if here is None or there is None or here[1] == there[1]:
                continue
            upward = there[0] > here[0]
            sideways = there[0] == here[0] and LAYERS[here[0]] is not UTILITIES
            if upward or sideways:
                kind = "upward" if upward else "sideways"
                bad.append(f"{_where(module, line)}: {module} -> {target} ({kind})")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(set(bad)))


def test_the_root_package_imports_nothing_of_ours():
    # It names the envs by entry-point string only (as the rl policies are named).
    assert GRAPH["blis_gym"] == []


def test_the_core_never_imports_the_rl_layer():
    bad = [
        f"{_where(m, line)}: {m} -> {t}"
        for m, imports in GRAPH.items()
        for t, line in imports
        if not m.startswith(RL_LAYER + ("blis_gym.cli", "blis_gym.__main__")) and t.startswith(RL_LAYER)
    ]
    assert not bad, "\n".join(bad)


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = {m: {t for t, _ in imports} for m, imports in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert _circles() == []


def test_the_contract_catches_an_upward_import(tmp_path):
    """The checker itself: an engine module importing the planner is reported."""
    fake = tmp_path / "bad.py"
    fake.write_text("from ..plan import resolve\n\ndef f():\n    from ..agents import train\n")
    MODULES["blis_gym.engine.bad"] = fake
    try:
        imports = _imports("blis_gym.engine.bad", fake)
    finally:
        del MODULES["blis_gym.engine.bad"]
    assert {_group(t)[1] for t, _ in imports} == {"blis_gym.plan", "blis_gym.agents"}
    assert all(_group(t)[0] > _group("blis_gym.engine.bad")[0] for t, _ in imports)


@pytest.mark.parametrize(
    "module, absent",
    [
        # The command line starts without the RL layer, Gymnasium, asyncio or any optional extra.
        (
            "blis_gym.cli.app",
            (
                "gymnasium",
                "torch",
                "stable_baselines3",
                "ray",
                "httpx",
                "aiohttp",
                "uvloop",
                "httptools",
                "starlette",
                "uvicorn",
                "matplotlib",
                "pyarrow",
                "asyncio",
                "blis_gym.envs",
                "blis_gym.agents",
            ),
        ),
        # The simulator core: nothing of the RL layer, no torch even with rl policies registered.
        ("blis_gym.plan", ("torch", "stable_baselines3", "ray", "blis_gym.agents", "blis_gym.envs")),
    ],
)
def test_importing_loads_only_what_is_used(module, absent):
    code = f"import sys, {module}; print(' '.join(sorted(m for m in {absent!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == []


def test_a_short_run_loads_only_what_it_uses():
    """``blis run`` on the shipped data and a generated workload reads no YAML, draws no numpy
    random numbers and loads neither Gymnasium nor the workload-spec and trace readers."""
    absent = ("yaml", "numpy.random", "gymnasium", "asyncio", "blis_gym.workload.spec", "blis_gym.workload.tracev2")
    code = (
        "import io, sys, contextlib\n"
        "from blis_gym.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--model', 'meta-llama/llama-3.1-8b-instruct', '--num-requests', '1', '--log', 'error'])\n"
        f"print(' '.join(m for m in {absent!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == []
