"""Imports run one way: from a higher layer of the package to a lower one, never in a loop.

Read from the source with the standard library's ``ast``, nothing imported: every
``import`` and ``from … import`` of the package's own modules, at module level or inside a
function (a late import does not excuse a loop: it only hides it until the call).

The layers, highest first (docs/architecture.md draws the same tree):

1. the entry points Django calls: ``apps`` (``ready()``), the system checks it registers,
   the management commands, the template tags;
2. ``dashboard``: every admin page (worker counts, the Resque pages, delayed jobs,
   schedules, task results) and their one URL table; ``metrics``: the Prometheus view;
3. ``pool``: the manager, which forks workers and the scheduler child;
4. ``models``: the app's Django models (``WorkerCount``, and ``Schedule`` gathered from
   the scheduler so that it belongs to the app);
5. the features beside the worker, independent of each other: ``scheduler`` (the
   process: mover, recurring schedules, leader lock, clock), ``tasks`` (the backend for
   Django's Tasks framework) and ``capacity`` (how a pool sizes itself: the autoscaling
   rule, the backlog it reads, the memory budget);
6. ``worker``: the worker process;
7. ``resque``: Resque's data layout in Redis, resque-scheduler's and resque-retry's keys
   included;
8. the ground: settings, exceptions, hooks, the failure backends and their signal,
   logging, process plumbing, the health probe, configuration files (these may import each
   other, without a loop).

Two kinds of import are not edges: those under ``if TYPE_CHECKING:`` (they never run; the
layer check still reads them) and, in a package's ``__init__.py``, those inside its module
``__getattr__``: the documented lazy faces (``resque_pool.Worker``,
``resque_pool.tasks.ResqueBackend``), which load a submodule on first use so that importing
the package stays cheap and never needs the optional Tasks framework.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "resque_pool"

# (layer, its components, whether the components may import each other), highest first.
LAYERS: list[tuple[str, list[str], bool]] = [
    (
        "entry points",
        [
            "resque_pool.apps",
            "resque_pool.checks",
            "resque_pool.management",
            "resque_pool.templatetags",
        ],
        True,
    ),
    ("admin pages", ["resque_pool.dashboard", "resque_pool.metrics"], False),
    ("pool manager", ["resque_pool.pool"], False),
    ("models", ["resque_pool.models"], False),
    ("features", ["resque_pool.capacity", "resque_pool.scheduler", "resque_pool.tasks"], False),
    ("worker", ["resque_pool.worker"], False),
    ("Resque data", ["resque_pool.resque"], False),
    (
        "ground",
        [
            "resque_pool.debug",
            "resque_pool.config_error",
            "resque_pool.yaml_file",
            "resque_pool.conf",
            "resque_pool.errors",
            "resque_pool.hooks",
            "resque_pool.failure_backends",
            "resque_pool.signals",
            "resque_pool.health",
            "resque_pool.stop",
            "resque_pool.logs",
            "resque_pool.unix",
            "resque_pool.version",
        ],
        True,
    ),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts
    }


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package's own module that ``name`` names (a module, or a name in one)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, whether it runs) for each of the package's own imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    not_run: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            not_run |= {id(inner) for inner in ast.walk(node)}
        lazy_face = (
            path.name == "__init__.py"
            and isinstance(node, ast.FunctionDef)
            and node.name == "__getattr__"
        )
        if lazy_face:
            not_run |= {id(inner) for inner in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from resque_pool.resque import failures`` imports the submodule.
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if not target.startswith("resque_pool"):
                continue
            module = resolve(target, modules)
            if module is not None and module != name:
                found.append((module, node.lineno, id(node) not in not_run))
    return found


def layer_of(module: str) -> tuple[int, str] | None:
    for index, (_layer, components, _peers) in enumerate(LAYERS):
        for component in components:
            if module == component or module.startswith(component + "."):
                return index, component
    return None


def test_every_module_has_a_layer():
    modules = all_modules()
    # The package's own face (resque_pool/__init__.py) stands above every layer.
    unplaced = sorted(m for m in modules if m != "resque_pool" and layer_of(m) is None)
    assert unplaced == [], "add these modules to a layer in LAYERS: " + ", ".join(unplaced)


def test_imports_run_from_a_higher_layer_to_a_lower_one():
    modules = all_modules()
    wrong: set[str] = set()
    for name, path in modules.items():
        source = layer_of(name)
        if source is None:
            continue
        for target, line, _runs in imports(name, path, modules):
            if target == "resque_pool":
                # The face re-exports every layer: a module importing it climbs above all.
                wrong.add(f"{path.relative_to(PACKAGE.parent)}:{line} imports the package's face")
                continue
            destination = layer_of(target)
            if destination is None:
                continue
            same_component = destination[1] == source[1]
            peers_allowed = LAYERS[source[0]][2]
            if destination[0] > source[0] or same_component:
                continue
            if destination[0] == source[0] and peers_allowed:
                continue
            wrong.add(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_loops():
    modules = all_modules()
    graph = {
        name: sorted({target for target, _line, runs in imports(name, path, modules) if runs})
        for name, path in modules.items()
    }
    loops = strongly_connected(graph)
    assert loops == [], "import loops:\n" + "\n".join(" <-> ".join(loop) for loop in loops)


def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every group of two or more modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, []):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_the_checks_find_a_loop_and_an_upward_import():
    """The checks themselves: a made-up loop is found, and a data-layer module importing
    the worker would be an upward import."""
    assert strongly_connected({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert layer_of("resque_pool.resque.jobs")[0] > layer_of("resque_pool.worker.loop")[0]
