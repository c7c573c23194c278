"""The bulk job that test_kill_resume.py runs in a child process (and SIGKILLs).

Usage: python _kill_child.py URL JOURNAL BACKEND COUNT START ANYIO_BACKEND

Sends one text to COUNT numbers through BACKEND ("ippanel" or "negin") on the fake at URL,
with the SQLite journal at JOURNAL, job id "kill-resume". At the end it prints one JSON
line: {"status": {recipient: outcome status}}. Killed, it prints nothing.
"""

from __future__ import annotations

import json
import sys

import anyio

import smsgate
from smsgate.dispatch import BulkDispatcher

JOB = "kill-resume"


async def main(url: str, journal: str, backend: str, count: int, start: int) -> None:
    rows = [
        smsgate.Message(to=f"0912{n:07d}", text="resume me") for n in range(start, start + count)
    ]
    if backend == "ippanel":
        gw: smsgate.SmsGateway = smsgate.IppanelGateway(
            username="user", password="secret-pass", sender="+983000505", base_url=url
        )
    else:
        gw = smsgate.NeginGateway(
            username="user", password="secret-pass", line="9830003300", base_url=url
        )
    async with gw:
        dispatcher = BulkDispatcher(gw, concurrency=8, max_batch=5, journal=journal)
        status = {o.recipient: o.status async for o in dispatcher.stream(rows, job_id=JOB)}
    print(json.dumps({"status": status}))  # the parent reads it


if __name__ == "__main__":
    url, journal, backend, count, start, anyio_backend = sys.argv[1:7]
    anyio.run(main, url, journal, backend, int(count), int(start), backend=anyio_backend)
