"""The layout ARCHITECTURE.md draws, checked: each package imports only downward, and no
two modules import each other, even through a chain or inside a function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "kabar"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    }


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import, at the top or inside a function, except in TYPE_CHECKING blocks
    (those never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _import_nodes(node)


def _known(name: str) -> str | None:
    """The kabar module `name` is, or is inside of (a name imported from it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parent = module.split(".") if is_package else module.split(".")[:-1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names]
        found |= {known for name in names if (known := _known(name)) and known != module}
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(wing: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _in(module, wing)
        for target in targets
        if any(_in(target, f"kabar.{name}") for name in forbidden)
    )


# What sits above each wing: it may import none of these.
ABOVE_RENDER = ("store", "deliver", "publish", "web", "cli", "runtime", "digest", "ledger")
ABOVE_DELIVERY = ("cli", "web", "runtime")
ABOVE_SOURCES = (
    "related", "render", "publish", "deliver", "web", "cli", "runtime", "digest", "ingest",
    "distributed", "schedule", "subscribers", "select", "urls", "ledger", "mails", "limits",
)  # fmt: skip
ABOVE_STORE = (*ABOVE_SOURCES, "sources", "config")
ABOVE_RELATED = (*ABOVE_SOURCES[1:], "sources", "mail")
ABOVE_MAIL = (*ABOVE_SOURCES, "sources", "store")
ABOVE_ISSUE = ("deliver", "publish", "web", "cli", "runtime", "distributed", "schedule", "ingest")
ABOVE_URLS = (*ABOVE_RENDER, "sources", "related", "ingest", "subscribers", "select")

RULES = [
    ("kabar.render", ABOVE_RENDER),
    ("kabar.publish", ABOVE_DELIVERY),
    ("kabar.deliver", ABOVE_DELIVERY),
    ("kabar.sources", ABOVE_SOURCES),
    ("kabar.store", ABOVE_STORE),
    ("kabar.related", ABOVE_RELATED),
    ("kabar.mail", ABOVE_MAIL),
    ("kabar.ingest", ABOVE_ISSUE),
    ("kabar.digest", (*ABOVE_ISSUE, "ledger")),
    ("kabar.urls", ABOVE_URLS),
    ("kabar.web", ("cli", "runtime", "distributed")),
    ("kabar.api", ("cli", "runtime", "distributed")),
    ("kabar.inbound", ("cli", "web", "api", "runtime")),
    ("kabar.hooks", ("cli", "web", "api", "runtime", "deliver", "publish", "inbound", "digest")),
    ("kabar.observe", ("cli", "web", "api", "runtime", "inbound", "digest")),
]


def test_the_graph_sees_the_package() -> None:
    # A checker that finds no modules or no imports would pass everything.
    assert {"kabar.render.email", "kabar.publish.feeds", "kabar.urls"} <= set(GRAPH)
    assert "kabar.render.document" in GRAPH["kabar.render.rss_atom"]
    assert "kabar.related.fallback" in GRAPH["kabar.digest"]  # a function-level import


def test_every_package_has_a_rule() -> None:
    # A package without a rule could import anything above it unnoticed, unless the
    # import happened to close a cycle. cli/ is the top floor: nothing is above it.
    packages = {f"kabar.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    assert packages - {"kabar.cli"} <= {wing for wing, _ in RULES}


@pytest.mark.parametrize(("wing", "forbidden"), RULES, ids=[wing for wing, _ in RULES])
def test_each_wing_imports_only_downward(wing: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(wing, forbidden) == []


def _cycle() -> list[str] | None:
    """One import cycle among kabar's modules, as the chain of modules, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(GRAPH):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_module_imports_itself_through_others() -> None:
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    GRAPH["kabar.model"].add("kabar.digest")
    try:
        cycle = _cycle()
    finally:
        GRAPH["kabar.model"].discard("kabar.digest")
    assert cycle is not None and "kabar.model" in cycle and cycle[0] == cycle[-1]
