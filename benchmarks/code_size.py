"""How big src/spiral is, and where it is biggest: lines of Python, `--` options over every `spiral`
subcommand, the longest file and functions, and import cycles between spiral's subpackages (an
import anywhere in a file counts, one inside a function too).

    .venv/bin/python benchmarks/code_size.py
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "spiral"


def cli_flags(parser: argparse.ArgumentParser) -> int:
    count = 0
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            count += sum(cli_flags(p) for p in set(action.choices.values()))
        elif not isinstance(action, argparse._HelpAction):
            count += sum(s.startswith("--") for s in action.option_strings)
    return count


def spiral_imports(tree: ast.AST, package: str) -> set[str]:
    """Top-level names under spiral that a module of `package` (dotted) imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            names.add(f"{base}.{node.module or ''}" if node.level else node.module or "")
    return {n.split(".")[1] for n in names if n.startswith("spiral.") and n.count(".") >= 1}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one subpackage (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while component[-1:] != [v]:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main() -> None:
    from spiral.cli import build_parser

    files = sorted(ROOT.rglob("*.py"))
    lines = {f: len(f.read_text().splitlines()) for f in files}
    subpackages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() or any(p.glob("*/*.py"))}
    functions: list[tuple[int, str]] = []
    edges: dict[str, set[str]] = {}
    example: dict[tuple[str, str], str] = {}
    for f in files:
        rel = f.relative_to(SRC)
        tree = ast.parse(f.read_text())
        functions += [(n.end_lineno - n.lineno + 1, f"{rel}:{n.lineno} {n.name}") for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]  # fmt: skip
        if len(rel.parts) > 2 and rel.parts[1] in subpackages:
            own = rel.parts[1]
            for target in spiral_imports(tree, ".".join(rel.parent.parts)) & subpackages - {own}:
                edges.setdefault(own, set()).add(target)
                example.setdefault((own, target), str(rel))
    longest = max(lines, key=lines.get)
    print(f"python lines under src/spiral: {sum(lines.values())} in {len(files)} files")
    print(f"`--` options over all `spiral` subcommands: {cli_flags(build_parser())}")
    print(f"longest file: {longest.relative_to(SRC)} ({lines[longest]} lines)")
    print("longest functions: " + "; ".join(f"{where} ({n} lines)" for n, where in sorted(functions)[:-4:-1]))
    found = cycles(edges)
    print(f"import cycles between subpackages: {len(found) or 'none'}")
    for component in found:
        print("  among " + ", ".join(component) + ":")
        for (a, b), where in sorted(example.items()):
            if a in component and b in component:
                print(f"    {a} -> {b} (e.g. {where})")


if __name__ == "__main__":
    main()
