"""The ``smsgate`` console script's entry point.

It imports the command line lazily, so that the script can say what is missing when the
``cli`` extra (click, rich, and uvicorn/starlette for the fake provider) is not installed,
instead of failing with a traceback. Same pattern as httpx's own ``main``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_MISSING = """\
The smsgate command line needs the 'cli' extra ({missing} is not installed).
Install it with (in a checkout of smsgate; 'smsgate-ir[cli]' once it is on PyPI):

    pip install '.[cli]'
    # or, to run it from the checkout with uv:  uv run smsgate ...
"""


def main() -> None:
    """Run the ``smsgate`` command line (``smsgate --help``)."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(_MISSING.format(missing=exc.name or "a dependency"))
        raise SystemExit(1) from None
    from .cli import cli

    cli(prog_name="smsgate")


if __name__ == "__main__":  # pragma: no cover - `python -m smsgate._cli_entry`
    main()
