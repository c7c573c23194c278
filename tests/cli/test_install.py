"""The install line the docs give works: build the wheel, install it with its extras into a
clean virtualenv, import smsgate from there and run the console script.

Dependencies come from uv's cache when it holds them (``--offline``), else from the index;
with neither (no network, empty cache) the test is skipped with the reason, except under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._services import under_ci

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV", "PYTHONPATH")}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _unavailable(reason: str) -> None:
    if under_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def test_built_wheel_installs_with_extras_into_a_clean_virtualenv(tmp_path: Path) -> None:
    """`uv build --wheel`, then `pip install 'WHEEL[cli,xlsx]'` into a new venv: it imports
    (from the venv, not the checkout), `smsgate --help` runs, and so does a .xlsx read."""
    uv = shutil.which("uv")
    if uv is None:
        _unavailable("uv is not installed")
        return
    dist = tmp_path / "dist"
    built = _run([uv, "build", "--wheel", "--out-dir", str(dist), "--offline"], ROOT)
    if built.returncode != 0:
        built = _run([uv, "build", "--wheel", "--out-dir", str(dist)], ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("smsgate_ir-*.whl")
    venv = tmp_path / "venv"
    made = _run([uv, "venv", "-q", str(venv), "--python", sys.executable], tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # The locked versions, so that the cache can serve them without the network.
    pins = tmp_path / "requirements.txt"
    export = [uv, "export", "-q", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project"]
    exported = _run([*export, "--extra", "cli", "--extra", "xlsx", "-o", str(pins)], ROOT)
    assert exported.returncode == 0, exported.stderr
    install = [uv, "pip", "install", "-q", "--python", str(python), "-r", str(pins)]
    install.append(f"{wheel}[cli,xlsx]")
    done = _run([*install, "--offline"], tmp_path)
    if done.returncode != 0:
        done = _run(install, tmp_path)
    if done.returncode != 0:
        _unavailable(f"cannot install the dependencies (no cache, no index): {done.stderr[-300:]}")
    where = _run([str(python), "-c", "import smsgate, openpyxl; print(smsgate.__file__)"], tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout  # the installed copy, not this checkout
    helped = _run([str(venv / "bin" / "smsgate"), "--help"], tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ("bulk", "journal", "reconcile", "fake-server", "demo"):
        assert command in helped.stdout
    # The demo runs on the extras alone (no dev tools): the fake, the dispatcher, the report.
    demo = _run([str(venv / "bin" / "smsgate"), "demo", "--count", "20", "--no-progress"], tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "where they went" in demo.stdout
