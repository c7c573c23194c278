"""The layering of STYLE.md §2a, enforced by reading imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "smsgate"

# module prefix -> smsgate modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "smsgate.exceptions": ("smsgate.",),
    "smsgate._asynclib": ("smsgate.",),
    "smsgate._telemetry": ("smsgate.",),
    "smsgate._phone": (
        "smsgate._models",
        "smsgate.backends",
        "smsgate.dispatch",
        "smsgate.testing",
    ),
    "smsgate._segments": ("smsgate.backends", "smsgate.dispatch", "smsgate.testing"),
    "smsgate._text": ("smsgate._models", "smsgate.backends", "smsgate.dispatch", "smsgate.testing"),
    "smsgate._models": (
        "smsgate.backends",
        "smsgate.dispatch",
        "smsgate.testing",
        "smsgate.webhooks",
    ),
    "smsgate._gateway": ("smsgate.backends", "smsgate.dispatch", "smsgate.testing"),
    "smsgate.backends": (
        "smsgate.dispatch",
        "smsgate.testing",
        "smsgate.webhooks",
        "smsgate.fastapi",
        "smsgate.cli",
    ),
    "smsgate.dispatch": (
        "smsgate.backends",
        "smsgate.testing",
        "smsgate.webhooks",
        "smsgate.fastapi",
        "smsgate.cli",
    ),
    "smsgate.webhooks": ("smsgate.backends", "smsgate.dispatch", "smsgate.testing", "smsgate.cli"),
}
NEVER_INSIDE_PACKAGE = ("asyncio",)
# The exceptions: a stream()'s job runs in a task that no caller's task group owns
# (so that `break` cannot leave a cancel scope behind in the caller's task). anyio cannot
# start such a task, so _stream starts it with the running library's own call (asyncio's
# create_task or trio's spawn_system_task, chosen by sniffio); tested under both. The Redis
# stream broker is a taskiq broker (asyncio-only, like taskiq's workers) whose heartbeat is
# such a detached task too.
ASYNCIO_ALLOWED = frozenset({"smsgate.dispatch._stream", "smsgate.taskiq._redis_broker"})


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    # Imports under `if TYPE_CHECKING:` are for annotations only and never run.
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_layering() -> None:
    """No module imports a layer above it (imports inside functions count too)."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        imports = _imports(path)
        for prefix, banned in FORBIDDEN.items():
            if module == prefix or module.startswith(prefix + "."):
                problems += [
                    f"{module} imports {name}"
                    for name in sorted(imports)
                    if any(
                        name == b.rstrip(".")
                        or name.startswith(b if b.endswith(".") else b + ".")
                        or name == b
                        for b in banned
                    )
                ]
    assert problems == []


def test_no_asyncio_in_package() -> None:
    """smsgate is anyio-only: asyncio is never imported by the package (trio must work)."""
    offenders = [
        _module_name(p)
        for p in sorted(PACKAGE.rglob("*.py"))
        if any(name.split(".")[0] in NEVER_INSIDE_PACKAGE for name in _imports(p))
        and _module_name(p) not in ASYNCIO_ALLOWED
    ]
    assert offenders == []
