"""The project's structure, checked: no import cycles (imports inside functions count too), and a
function-local import only for a heavy optional dependency, with its reason written beside it.

The import rules between packages are import-linter contracts (pyproject.toml, `make imports`)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("services", "shared", "vcfad")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))}


def _resolve(name: str, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``ImportFrom`` in module ``name`` names (relative imports resolved)."""
    if not node.level:
        return node.module
    is_package = _sources()[name].name == "__init__.py"
    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _import_graph() -> dict[str, set[str]]:
    modules = _sources()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = _resolve(name, node)
                if not module:
                    continue
                targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_every_package_and_local_imports() -> None:
    graph = _import_graph()
    assert "services.detector.inference" in graph["services.detector.app"]
    assert "shared.schemas" in graph["services.gateway.router"]
    assert any(target.startswith("services.") for target in graph["vcfad.cli"])


def test_the_project_has_no_import_cycles() -> None:
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _reasons(source: str) -> dict[int, str]:
    """Line number → the text of the comment on it, pragmas (``noqa``, ``type: ignore``) removed."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = re.sub(r"noqa(:\s*[A-Z0-9, ]+)?|type:\s*ignore(\[[^\]]*\])?", "", token.string.lstrip("#"))
            if re.search(r"\w", text):
                found[token.start[0]] = text.strip()
    return found


def _unexplained_local_imports(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """Function-local imports in ``path`` without a reason: a comment on the import's own lines or
    on the line just above. The reason of the first import of a run of consecutive import statements
    (blank lines between them allowed, as isort groups them) covers the run."""
    source = path.read_text(encoding="utf-8")
    reasons = _reasons(source)
    lines = source.splitlines()
    missing = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        fields = ("body", "orelse", "finalbody")  # statement lists (handlers are nodes with a body)
        blocks = (getattr(node, field, None) for node in ast.walk(function) for field in fields)
        for body in blocks:
            if not isinstance(body, list):
                continue
            block_explained = False  # the statement before was an import with a reason
            for statement in body:
                if not isinstance(statement, ast.Import | ast.ImportFrom):
                    block_explained = False
                    continue
                first, last = statement.lineno, statement.end_lineno or statement.lineno
                above = lines[first - 2].strip() if first >= 2 else ""
                block_explained = (
                    any(line in reasons for line in range(first, last + 1))
                    or (above.startswith("#") and first - 1 in reasons)
                    or block_explained
                )
                if not block_explained:
                    missing.append(f"{path.relative_to(root)}:{first}: {lines[first - 1].strip()}")
    return sorted(set(missing))


def test_function_local_imports_say_why() -> None:
    """An import inside a function is for a heavy optional dependency (or to break a cycle), and
    says so in one line; anything else belongs at the top of its module."""
    missing = [
        entry
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        for entry in _unexplained_local_imports(path)
    ]
    assert missing == [], "function-local imports without a reason:\n" + "\n".join(missing)


def test_the_reason_check_reads_comments_and_blocks(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "def explained():\n"
        "    # torch is heavy: only training loads it\n"
        "    import torch\n"
        "\n"
        "    from torch import nn\n"
        "\n"
        "    import numpy  # already loaded everywhere, but fine\n"
        "\n"
        "\n"
        "def unexplained():\n"
        "    x = 1\n"
        "    import json  # noqa: F401\n"
        "    return x\n",
        encoding="utf-8",
    )
    assert [entry.split(": ", 1)[1] for entry in _unexplained_local_imports(module, tmp_path)] == [
        "import json  # noqa: F401"
    ]
