"""Sizes of the project's code: modules and functions by lines, the largest first.

.venv/bin/python scripts/code_metrics.py [TREE]    # TREE: a checkout (default: this one)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("storage", "dicomweb", "dimse", "wsiarchive", "converter")


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            name = str(path.relative_to(root))
            modules.append((len(text.splitlines()), name))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    functions.append((size, f"{name}:{node.lineno} {node.name}"))
    modules.sort(reverse=True)
    functions.sort(reverse=True)
    print(f"{len(modules)} modules, {sum(n for n, _ in modules)} lines; {len(functions)} functions")
    print("largest modules:")
    for size, name in modules[:8]:
        print(f"  {size:5d} {name}")
    print("largest functions:")
    for size, name in functions[:8]:
        print(f"  {size:5d} {name}")
    print(
        f"modules over 400 lines: {sum(1 for n, _ in modules if n > 400)}; "
        f"functions over 60 lines: {sum(1 for n, _ in functions if n > 60)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
