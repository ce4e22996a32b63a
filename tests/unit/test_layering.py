"""ccgate's packages depend one way: no cycle between subpackages (config never imports
upstream, routing, server...), and the shared leaves import nothing of ccgate.

Read from the source with ``ast`` (imports inside functions and ``TYPE_CHECKING`` blocks
count too: a lazy import is still a dependency), so the test sees what a reader sees.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ccgate

SRC = Path(ccgate.__file__).parent
# Top-level modules everything may use; they must not reach back into the packages.
LEAVES = ("errors", "proxy_env")


def _node(path: Path) -> str:
    """The unit of layering a file belongs to: its subpackage, or its own name at top level."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _known_nodes() -> set[str]:
    return {_node(p) for p in SRC.rglob("*.py")} - {"__init__"}


def _targets(path: Path, tree: ast.AST, known: set[str]) -> set[str]:
    """The ccgate nodes the file imports from."""
    package = ["ccgate", *path.relative_to(SRC).parent.parts]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from ccgate import errors` names a module; `from ccgate import __version__` does not.
            names = [f"{module}.{a.name}" for a in node.names] if module == "ccgate" else [module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ccgate" and len(parts) > 1 and parts[1] in known:
                out.add(parts[1])
    return out


def _graph() -> dict[str, set[str]]:
    known = _known_nodes()
    graph: dict[str, set[str]] = {n: set() for n in known}
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts == ("__init__.py",):
            continue
        source = _node(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[source] |= _targets(path, tree, known) - {source}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    # Known edges, so an import-walking bug cannot make the real assertions pass vacuously.
    assert {"config", "errors", "proxy_env"} <= graph["upstream"]
    assert "config" in graph["routing"] and "translate" in graph["config"]


def test_no_package_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "package cycle: " + " -> ".join(cycle or [])


def test_leaves_import_nothing_of_ccgate() -> None:
    graph = _graph()
    for leaf in LEAVES:
        assert graph[leaf] == set(), f"{leaf}.py imports {sorted(graph[leaf])}"


def test_config_does_not_import_upstream() -> None:
    graph = _graph()
    assert "upstream" not in graph["config"]
    assert not graph["config"] & {"routing", "server", "cli", "doctor", "setup", "store"}


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
