"""The handoff between a job's reader and its workers, and the dispatcher's tokens.

No batch is lost with a cancelled worker, a token handed to a cancelled waiter goes on to
the next one, and both are first come, first served. Under asyncio and trio; nothing waits
on the clock (every step is a checkpoint).
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from smsgate import Message
from smsgate.dispatch._context import Slots
from smsgate.dispatch._handoff import Handoff
from smsgate.dispatch._intake import Item

pytestmark = pytest.mark.anyio


def batch(n: int) -> list[Item]:
    return [Item(Message(to=f"0912{n:07d}", text="hi"), f"+98912{n:07d}", "+983000505")]


async def settle() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_batches_go_to_the_worker_that_waited_longest() -> None:
    handoff = Handoff()
    got: list[tuple[str, list[Item] | None]] = []

    async def worker(name: str) -> None:
        got.append((name, await handoff.wait()))

    first, second = batch(1), batch(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "a")
        await settle()
        tg.start_soon(worker, "b")
        await settle()
        assert handoff.idle == 2
        assert handoff.give(first) and handoff.give(second)
        assert not handoff.give(batch(3))  # nobody waits any more
    assert dict(got) == {"a": first, "b": second}  # (trio resumes them in any order)


async def test_a_worker_cancelled_after_the_handover_does_not_lose_the_batch() -> None:
    """Cancelled after the handover: the batch goes back (asyncio), or the wait had
    already ended with it (trio reschedules the task at once); never lost."""
    handoff = Handoff()
    given = batch(1)
    got: list[list[Item] | None] = []

    async def worker() -> None:
        got.append(await handoff.wait())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await settle()
        assert handoff.give(given)
        tg.cancel_scope.cancel()  # before the worker ran again
    assert handoff.idle == 0
    back = handoff.take()
    assert (back is given) != (got == [given])


async def test_woken_workers_get_nothing_and_the_reader_waits_for_room() -> None:
    handoff = Handoff()
    woken: list[list[Item] | None] = []
    room = anyio.Event()

    async def reader() -> None:
        await handoff.wait_room()
        room.set()

    async with anyio.create_task_group() as tg:

        async def worker() -> None:
            woken.append(await handoff.wait())

        tg.start_soon(worker)
        await settle()
        handoff.wake()
        handoff.ready.append(batch(1))
        tg.start_soon(reader)
        await settle()
        assert not room.is_set()
        assert handoff.take() is not None
        await settle()
        assert room.is_set()
    assert woken == [None]


async def test_slots_are_first_come_first_served_and_survive_cancellation() -> None:
    slots = Slots(1)
    slots.acquire_nowait()
    with pytest.raises(anyio.WouldBlock):
        slots.acquire_nowait()
    order: list[str] = []

    async def take(name: str) -> None:
        await slots.acquire()
        order.append(name)
        slots.release()

    scopes: list[anyio.CancelScope] = []

    async def cancelled_waiter() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await slots.acquire()
            order.append("never")  # the token reached it before the cancellation did
            slots.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancelled_waiter)
        await settle()
        tg.start_soon(take, "second")
        await settle()
        assert slots.waiting == 2
        slots.release()  # to the first waiter, which is cancelled before it runs
        scopes[0].cancel()
        await settle()
    assert order in (["second"], ["never", "second"])
    assert (slots.borrowed, slots.waiting) == (0, 0)


async def test_a_waiter_cancelled_before_its_turn_leaves_the_queue() -> None:
    slots = Slots(1)
    slots.acquire_nowait()
    async with anyio.create_task_group() as tg:
        tg.start_soon(slots.acquire)
        await settle()
        assert slots.waiting == 1
        tg.cancel_scope.cancel()
    assert (slots.borrowed, slots.waiting) == (1, 0)
    slots.release()
    slots.acquire_nowait()  # free again
