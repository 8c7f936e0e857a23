"""Group commit: one thread owns the write connection and drains a queue of deliveries.

Requests are verified and parsed on the event loop (outside the writer); each hands its
prepared delivery to the queue and waits. The writer takes everything waiting (up to
``max_group``), applies it in **one** transaction — one fsync for all — and only then releases
each request's answer, all of a group's at once (one wake-up of the event loop, not one per
delivery). Under load the groups grow by themselves: while one transaction commits, the next
group gathers. A lone request still commits at once (no timer, no added latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import StoreError
from ..models import Outcome
from ..runtime.engine import Engine, Prepared

__all__ = ["Writer", "WriterBusy", "WriterStopped"]

log = logging.getLogger("engine.server")


class WriterStopped(StoreError):
    """The receiver is shutting down (or its writer failed to start): nothing was recorded."""


class WriterBusy(StoreError):
    """More deliveries are waiting than the writer may queue: refused, nothing recorded."""


class _Job(NamedTuple):
    prepared: Prepared | None  # None: a health check (read once, record nothing)
    done: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP = object()


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the event loop: hand each waiting request its result (unless it gave up waiting)."""
    for done, value, exc in results:
        if done.cancelled():
            continue
        if exc is None:
            done.set_result(value)
        else:
            done.set_exception(exc)


class Writer:
    """The single writer of a receiver.

    Args:
        engine: the engine to commit through; from now on only the writer thread writes with
            it (others may still call :meth:`Engine.prepare`, which reads no database).
        max_group: the most deliveries in one transaction.
        max_pending: the most deliveries waiting; more are refused (the receiver answers 503,
            and the provider retries) rather than held in memory without bound.
        on_group: called with each committed group's size (metrics), on the writer thread.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_group: int = 256,
        max_pending: int = 10_000,
        on_group: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.engine = engine
        self.max_group = max_group
        self.max_pending = max_pending
        self.on_group = on_group
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="invoice-engine-writer", daemon=True)
        self._thread.start()

    @property
    def stopped(self) -> bool:
        """Whether the writer takes no more work (closed, or its thread has ended)."""
        return self._stopped or not self._thread.is_alive()

    async def apply(self, prepared: Prepared) -> Outcome:
        """The delivery's outcome, once it is committed.

        Raises:
            StoreError: nothing of it was recorded (the database failed, the writer is busy or
                shutting down).
        """
        if self.stopped:
            raise WriterStopped("the receiver is shutting down")
        if self._queue.qsize() >= self.max_pending:
            raise WriterBusy(f"{self.max_pending:,} deliveries are waiting to be written")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Job(prepared, done, loop))
        return await done

    async def ping(self) -> None:
        """Return once the writer has read from the database (a health check).

        Raises:
            StoreError: the database did not answer, or the writer is stopped.
        """
        if self.stopped:
            raise WriterStopped("the receiver is shutting down")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Job(None, done, loop))
        await done

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, stop the thread, close the engine."""
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self.engine.close()

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            self._drain()
        except BaseException:
            log.exception("the writer stopped on an unexpected error")
            raise
        finally:  # whatever ended the thread, nobody is left waiting for an answer
            self._stopped = True
            left: list[_Job] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Job):
                    left.append(item)
            stopped = WriterStopped("the receiver is shutting down; nothing was recorded")
            self._reply(left, [(None, stopped)] * len(left))

    def _drain(self) -> None:
        stop = False
        while not stop:
            group: list[_Job] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Job):
                    if item.prepared is None:
                        self._ping(item)
                    else:
                        group.append(item)
                if stop or len(group) >= self.max_group:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._reply(group, self._commit(group))

    def _ping(self, job: _Job) -> None:
        try:
            self.engine.ping()
        except Exception as exc:
            self._reply([job], [(None, exc)])
        else:
            self._reply([job], [(None, None)])

    def _commit(self, group: list[_Job]) -> list[tuple[Outcome | None, BaseException | None]]:
        prepared = [job.prepared for job in group if job.prepared is not None]
        try:
            outcomes = self.engine.commit(prepared)
        except Exception as exc:
            if len(group) > 1:  # a fault tied to one delivery must not fail the others
                log.warning("a group of %d failed (%s); writing them one by one", len(group), exc)
                return self._one_by_one(group)
            if isinstance(exc, StoreError):
                log.error("write failed: %s", exc)
                return [(None, exc)]
            log.exception("the engine failed on a delivery (nothing of it was recorded)")
            return [(None, StoreError("the engine failed on this delivery; see the server log"))]
        self.on_group(len(group))
        return [(outcome, None) for outcome in outcomes]

    def _one_by_one(self, group: list[_Job]) -> list[tuple[Outcome | None, BaseException | None]]:
        """Each delivery of a failed group alone; after two failures in a row the database, not
        a delivery, is taken to be at fault, and the rest fail without more waiting."""
        results: list[tuple[Outcome | None, BaseException | None]] = []
        failed_in_a_row = 0
        for job in group:
            if failed_in_a_row >= 2:
                results.append((None, results[-1][1]))
                continue
            [result] = self._commit([job])
            failed_in_a_row = failed_in_a_row + 1 if result[1] is not None else 0
            results.append(result)
        return results

    @staticmethod
    def _reply(
        group: list[_Job], results: list[tuple[Outcome | None, BaseException | None]]
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for job, (value, exc) in zip(group, results, strict=True):
            by_loop.setdefault(job.loop, []).append((job.done, value, exc))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, settled)
