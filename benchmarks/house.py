"""How the package reads to a newcomer, measured: import cycles between topdown's modules (function-local imports
included) and function bodies (signature and docstring left out) over 80 lines.

    python benchmarks/house.py          # prints both; exit status 1 if there is a cycle
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "topdown"
LONG = 80


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Module -> the topdown modules it imports anywhere in its body."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        mod = _module(path)
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                named = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                deps.update(named or [target])
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[mod] = {d for d in deps if d in modules and d != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def long_functions(limit: int = LONG) -> list[tuple[int, str]]:
    """``(lines, "file:line name")`` for every function whose body is longer than ``limit`` lines, longest first."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
                n = node.end_lineno - body[0].lineno + 1  # the body: signature and docstring left out
                if n > limit:
                    out.append((n, f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main() -> int:
    found = cycles(import_graph())
    print(f"import cycles: {len(found)}")
    for group in found:
        print("  " + " <-> ".join(group))
    long = long_functions()
    print(f"function bodies over {LONG} lines: {len(long)}")
    for n, where in long:
        print(f"  {n:4d}  {where}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
