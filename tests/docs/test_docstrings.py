"""Every public object has a docstring and a place in the API reference.

mkdocstrings renders what it finds and silently leaves out an object without a docstring,
so ``mkdocs build --strict`` alone cannot catch one; these tests do. "Public" means: each
name in ``__all__`` of the modules below, and each public method or property a public
class defines itself. A constant is documented by a string literal right after it, or by
``#:`` comment lines right above it (both are read by the docs build).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
# The modules whose __all__ users import from; each must be covered by docs/reference/.
PUBLIC_MODULES = [
    "smsgate",
    "smsgate.exceptions",
    "smsgate.backends.ippanel",
    "smsgate.backends.negin",
    "smsgate.dispatch",
    "smsgate.testing",
    "smsgate.webhooks",
    "smsgate.fastapi",
    "smsgate.tracking",
    "smsgate.report",
    "smsgate.sync",
    "smsgate.otel",
]
_DIRECTIVE = re.compile(r"^:::[ \t]+(?P<target>[\w.]+)[ \t]*$", re.MULTILINE)


def _exported(module_name: str) -> Iterator[tuple[str, str, Any]]:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        if not (name.startswith("__") and name.endswith("__")):
            yield module_name, name, getattr(module, name)


def public_names() -> list[tuple[str, str, Any]]:
    """(module, name, object) for every exported name of every public module."""
    return [item for module in PUBLIC_MODULES for item in _exported(module)]


def _is_ours(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).startswith("smsgate")


def _is_code(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj) or isinstance(obj, types.ModuleType)


# -- constants: docstrings live in the source, not on the value -------------------------


def _module_ast(module_name: str) -> tuple[ast.Module, list[str]] | None:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    source = Path(spec.origin).read_text(encoding="utf-8")
    return ast.parse(source), source.splitlines()


def _resolve_relative(module_name: str, node: ast.ImportFrom) -> str:
    package = module_name if _is_package(module_name) else module_name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    if node.level == 0:
        return node.module or ""
    return f"{package}.{node.module}" if node.module else package


def _is_package(module_name: str) -> bool:
    spec = importlib.util.find_spec(module_name)
    return bool(spec and spec.submodule_search_locations is not None)


def constant_is_documented(module_name: str, name: str, depth: int = 0) -> bool:
    """Whether the assignment of ``name`` (followed through re-exports) is documented."""
    parsed = _module_ast(module_name)
    if parsed is None or depth > 5:
        return False
    tree, lines = parsed
    body = tree.body
    for index, node in enumerate(body):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            following = body[index + 1] if index + 1 < len(body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
                and following.value.value.strip()
            ):
                return True
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            return above.startswith("#:") and len(above) > 2
    for node in body:
        if isinstance(node, ast.ImportFrom) and any(
            (a.asname or a.name) == name for a in node.names
        ):
            source = _resolve_relative(module_name, node)
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            return constant_is_documented(source, original, depth + 1)
    return False


# -- the tests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "obj"), public_names(), ids=[f"{m}.{n}" for m, n, _ in public_names()]
)
def test_public_name_has_docstring(module: str, name: str, obj: Any) -> None:
    """The exported name has a docstring of its own (constants: in the source)."""
    if _is_code(obj):
        assert (obj.__doc__ or "").strip(), f"{module}.{name} has no docstring"
    else:
        assert constant_is_documented(module, name), (
            f"{module}.{name} is not documented: put a docstring line after it or '#:' "
            "comment lines right above it"
        )


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    for member_name, value in vars(cls).items():
        if member_name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            yield member_name, value.__func__
        elif isinstance(value, property):
            yield member_name, value.fget
        elif inspect.isfunction(value):
            yield member_name, value


def public_methods() -> list[tuple[str, Any]]:
    """(qualified name, function) for each public method/property of each public class."""
    seen: set[int] = set()
    found: list[tuple[str, Any]] = []
    for module, name, obj in public_names():
        if not inspect.isclass(obj) or not _is_ours(obj) or id(obj) in seen:
            continue
        seen.add(id(obj))
        found.extend((f"{module}.{name}.{m}", f) for m, f in _members(obj))
    return found


@pytest.mark.parametrize(
    ("qualname", "func"), public_methods(), ids=[q for q, _ in public_methods()]
)
def test_public_method_has_docstring(qualname: str, func: Any) -> None:
    """Each public method and property of a public class has its own docstring."""
    assert (getattr(func, "__doc__", None) or "").strip(), f"{qualname} has no docstring"


def _directives() -> list[str]:
    return [
        m["target"]
        for page in sorted(REFERENCE.glob("*.md"))
        for m in _DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
    ]


def _covered() -> tuple[set[str], set[int]]:
    paths: set[str] = set()
    ids: set[int] = set()
    for target in _directives():
        try:
            obj: Any = importlib.import_module(target)
        except ImportError:
            module, _, attr = target.rpartition(".")
            obj = getattr(importlib.import_module(module), attr)
        paths.add(target)
        ids.add(id(obj))
        if isinstance(obj, types.ModuleType):
            for name in getattr(obj, "__all__", ()):
                paths.add(f"{target}.{name}")
                ids.add(id(getattr(obj, name)))
    return paths, ids


def test_reference_directives_resolve() -> None:
    """Every ``::: name`` in docs/reference/ names an importable object."""
    targets = _directives()
    assert len(targets) >= 10
    _covered()  # raises if one does not import


def test_every_public_name_is_in_the_reference() -> None:
    """Each exported name is rendered by a ``:::`` directive, itself or through its module."""
    paths, ids = _covered()
    missing = [
        f"{module}.{name}"
        for module, name, obj in public_names()
        if f"{module}.{name}" not in paths and not (_is_code(obj) and id(obj) in ids)
    ]
    assert not missing, f"add these to docs/reference/*.md: {missing}"


def test_constant_check_reads_both_styles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A docstring after, or ``#:`` above, documents a constant; a bare one is caught."""
    (tmp_path / "docmod_example.py").write_text(
        'A = 1\n"""A is documented."""\n\n#: B is documented too.\nB = 2\n\nC = 3\n',
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert constant_is_documented("docmod_example", "A")
    assert constant_is_documented("docmod_example", "B")
    assert not constant_is_documented("docmod_example", "C")
