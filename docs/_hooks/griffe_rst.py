"""Griffe extension: read smsgate's Sphinx-flavoured docstrings as Markdown.

The docstrings are Google style, but their prose uses a few reStructuredText habits
(``:class:`~smsgate.X``` roles, ``text::`` before a literal block, simple ``====`` tables)
so that Sphinx could render them too. mkdocstrings renders Markdown, so before any
docstring is parsed this extension rewrites those three things:

* a role naming ``smsgate.<something>`` becomes a *required* cross-reference: if the target
  is not in the API reference, ``mkdocs build --strict`` fails;
* a role with a relative name (``:meth:`send```) is resolved in the object's scope and
  becomes an *optional* cross-reference (a link when the target is documented, code
  otherwise); names outside smsgate (``anyio...``) and private names become code;
* ``text::`` + an indented block becomes ``text:`` + a fenced block (Python when it parses
  as Python, plain text otherwise); a simple table becomes a Markdown table.

It also gives attrs classes the ``__init__`` attrs generates at run time (griffe reads the
source and would not see it), so that a class docstring's ``Args:`` section matches a real
signature and the rendered signature shows the keyword-only options.

Loaded by mkdocs.yml (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|exc|mod|data|obj|const|type):`(?P<body>[^`]+)`"
)
_TABLE_BORDER = re.compile(r"^(?P<indent>\s*)=+(?: +=+)+\s*$")
_SECTION_HEADER = re.compile(r"^(?:Example|Examples|Note|Notes|Warning|Warnings):$")
_CALLABLE_ROLES = {"func", "meth"}


_ATTRS_CLASS = {
    "attrs.define",
    "attrs.frozen",
    "attrs.mutable",
    "attr.s",
    "attr.attrs",
    "attr.define",
    "attr.frozen",
    "attr.mutable",
}
_ATTRS_FIELD = {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Convert this object's docstring in place."""
        if obj.docstring is None and obj.is_attribute:
            obj.docstring = _comment_docstring(obj)
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value, obj)

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Give an attrs class the ``__init__`` attrs would generate."""
        options = _attrs_options(cls)
        if options is None or "__init__" in cls.members or options.get("init") == "False":
            return
        params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
        params += _attrs_parameters(cls, class_kw_only=options.get("kw_only") == "True")
        init = griffe.Function(
            "__init__",
            parameters=griffe.Parameters(*params),
            returns="None",
            lineno=cls.lineno,
            endlineno=cls.lineno,
        )
        cls.set_member("__init__", init)


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """Sphinx's ``#:`` comment lines right above an assignment, as its docstring."""
    if obj.lineno is None or not isinstance(obj.filepath, Path):
        return None
    lines = _source_lines(obj.filepath)
    comments: list[str] = []
    index = obj.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        comments.insert(0, lines[index].strip()[2:].removeprefix(" "))
        index -= 1
    if not comments:
        return None
    return griffe.Docstring("\n".join(comments), lineno=index + 2, parent=obj)


@functools.cache
def _source_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _call_parts(value: Any) -> tuple[str, dict[str, str]]:
    if isinstance(value, griffe.ExprCall):
        kwargs = {
            arg.name: str(arg.value)
            for arg in value.arguments
            if isinstance(arg, griffe.ExprKeyword)
        }
        return str(value.function), kwargs
    return str(value), {}


def _attrs_options(cls: griffe.Class) -> dict[str, str] | None:
    for decorator in cls.decorators:
        name, kwargs = _call_parts(decorator.value)
        if name in _ATTRS_CLASS:
            return kwargs
    return None


def _attrs_parameters(cls: griffe.Class, *, class_kw_only: bool) -> list[griffe.Parameter]:
    # Fields of attrs base classes come first, as attrs orders them.
    params: list[griffe.Parameter] = []
    for base in reversed(_resolved_bases(cls)):
        base_options = _attrs_options(base)
        if base_options is not None:
            params += _attrs_parameters(base, class_kw_only=base_options.get("kw_only") == "True")
    methods = [
        (m.lineno or 0, m.endlineno or 0)
        for m in cls.members.values()
        if not m.is_alias and m.is_function
    ]
    # Fields whose default comes from a method decorated with ``@<field>.default``.
    computed = {
        str(d.value).removesuffix(".default")
        for m in cls.members.values()
        if not m.is_alias and m.is_function
        for d in m.decorators
        if str(d.value).endswith(".default")
    }
    for member in list(cls.members.values()):
        if (
            member.is_alias
            or not member.is_attribute
            or member.annotation is None
            or "property" in member.labels
        ):
            continue
        line = member.lineno or 0
        if str(member.annotation).startswith(("ClassVar", "typing.ClassVar")) or any(
            start <= line <= end for start, end in methods
        ):
            continue  # a class variable, or `self.x = ...` inside a method
        default: str | None = None
        kw_only = class_kw_only
        name = member.name.lstrip("_")
        value = member.value
        function, field = _call_parts(value) if value is not None else ("", {})
        if function in _ATTRS_FIELD:
            if field.get("init") == "False":
                continue
            if "default" in field:
                default = field["default"]
            elif "factory" in field:
                default = f"{field['factory']}()"
            kw_only = kw_only or field.get("kw_only") == "True"
            if "alias" in field:
                name = field["alias"].strip("'\"")
        elif value is not None:
            default = str(value)
        if default is None and member.name in computed:
            default = "<computed>"
        kind = (
            griffe.ParameterKind.keyword_only
            if kw_only
            else griffe.ParameterKind.positional_or_keyword
        )
        params.append(
            griffe.Parameter(name, annotation=member.annotation, kind=kind, default=default)
        )
    return params


def _resolved_bases(cls: griffe.Class) -> list[griffe.Class]:
    try:
        return [b for b in cls.resolved_bases if isinstance(b, griffe.Class)]
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return []


def convert(text: str, obj: griffe.Object | None = None) -> str:
    """The Markdown form of one docstring."""
    lines = text.splitlines()
    lines = _literal_blocks(lines)
    lines = _simple_tables(lines)
    out: list[str] = []
    in_fence = False
    for line in lines:
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        out.append(line if in_fence else _ROLE.sub(lambda m: _role(m, obj), line))
    return "\n".join(out)


def _role(match: re.Match[str], obj: griffe.Object | None) -> str:
    role, body = match["role"], match["body"].strip()
    if body.startswith("!"):
        return f"`{body[1:]}`"
    explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", body)
    if explicit:
        title, target = explicit["title"], explicit["target"]
    else:
        target = body.lstrip("~")
        title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
    if role in _CALLABLE_ROLES and not title.endswith(")"):
        title += "()"
    code = f"`{title}`"
    if target.rsplit(".", 1)[-1].startswith("_"):
        return code  # private: never in the reference
    if target.startswith("smsgate."):
        return f"[{code}][{target}]"
    resolved = _resolve(target, obj)
    if resolved is None or not resolved.startswith("smsgate."):
        return code  # another project's name (anyio, httpx...) or unknown
    return f'<autoref identifier="{resolved}" optional><code>{title}</code></autoref>'


def _resolve(target: str, obj: griffe.Object | None) -> str | None:
    if obj is None:
        return None
    head, _, rest = target.partition(".")
    try:
        path = obj.resolve(head)
    except (griffe.NameResolutionError, griffe.AliasResolutionError, KeyError):
        return None
    return f"{path}.{rest}" if rest else path


def _literal_blocks(lines: list[str]) -> list[str]:
    """``para::`` + indented block -> ``para:`` + a fenced block."""
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if stripped.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and stripped.lstrip().startswith(">>>"):
            # A doctest outside a fence: Markdown would read ">>>" as nested quotes.
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        if in_fence or not stripped.endswith("::") or stripped.lstrip().startswith("```"):
            out.append(line)
            i += 1
            continue
        base = len(line) - len(line.lstrip())
        head = stripped[:-2].rstrip()
        if head.strip():
            out.append(head if stripped[-3:-2] == " " else stripped[:-1])
        # The block: blank lines and lines indented deeper than the paragraph.
        j = i + 1
        block: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base
        ):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        body = [b for b in block if b.strip()]
        if not body:
            i += 1
            continue
        inner = min(len(b) - len(b.lstrip()) for b in body)
        code = [b[inner:] if b.strip() else "" for b in block]
        while code and not code[0]:
            code.pop(0)
        # Inside a Google section ("Example:") the content must stay indented; in plain
        # prose a 4-space indent would make the fence itself an indented code block.
        in_section = bool(out) and bool(_SECTION_HEADER.match(out[-1].strip()))
        fence_indent = " " * (inner if in_section else base)
        out.append("")
        out.append(f"{fence_indent}```{_language(code)}")
        out.extend(f"{fence_indent}{c}" if c else "" for c in code)
        out.append(f"{fence_indent}```")
        if j < len(lines):
            out.append("")  # the blank lines after the block were taken with it
        i = j
    return out


def _language(code: list[str]) -> str:
    try:
        ast.parse("\n".join(code))
    except SyntaxError:
        return "text"
    return "python"


def _simple_tables(lines: list[str]) -> list[str]:
    """A reStructuredText simple table (``====  ====`` borders) -> a Markdown table."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        border = _TABLE_BORDER.match(lines[i])
        if not border:
            out.append(lines[i])
            i += 1
            continue
        indent = border["indent"]
        starts = [m.start() for m in re.finditer(r"=+", lines[i])]
        j = i + 1
        rows: list[list[str]] = []
        borders = 1
        header_rows = 0
        while j < len(lines) and borders < 3:
            if _TABLE_BORDER.match(lines[j]):
                borders += 1
                if borders == 2:
                    header_rows = len(rows)
            elif lines[j].strip():
                cells = _cells(lines[j], starts)
                if rows and not cells[0] and borders == 2:
                    # A blank first column continues the row above (RST simple tables).
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
                else:
                    rows.append(cells)
            j += 1
        header, body = rows[:header_rows] or [rows[0]], rows[header_rows:] or rows[1:]
        width = len(starts)
        out.append(indent + "| " + " | ".join(header[0]) + " |")
        out.append(indent + "|" + " --- |" * width)
        out.extend(indent + "| " + " | ".join(row) + " |" for row in body)
        i = j
    return out


def _cells(line: str, starts: list[int]) -> list[str]:
    ends = [*starts[1:], len(line) + 1]
    return [line[a:b].strip().replace("|", r"\|") for a, b in zip(starts, ends, strict=True)]
