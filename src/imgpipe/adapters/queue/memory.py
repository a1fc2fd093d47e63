"""``MemoryQueue``: an in-process job queue with acks, redelivery, a delivery limit and a dead-letter list.

It keeps nothing across restarts; that is safe because the database is the
source of truth and ``imgpipe run`` queues every unfinished job again at start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from imgpipe.domain.message import encode
from imgpipe.domain.ports import Delivery, QueueStats

__all__ = ["MemoryQueue"]


@dataclass
class _Message:
    body: bytes
    deliveries: int = 0


@dataclass
class _MemoryDelivery:
    queue: MemoryQueue
    message: _Message
    redelivered: bool
    settled: bool = field(default=False)

    @property
    def body(self) -> bytes:
        return self.message.body

    def _settle(self) -> None:
        if self.settled:
            raise RuntimeError("delivery already settled")
        self.settled = True
        self.queue._inflight.release()

    async def ack(self) -> None:
        self._settle()

    async def retry(self) -> None:
        self._settle()
        self.queue._requeue(self.message)

    async def dead_letter(self) -> None:
        self._settle()
        self.queue.dead_letters.append(self.message.body)


class _MemoryConsumer:
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def cancel(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class MemoryQueue:
    def __init__(self, delivery_limit: int = 10) -> None:
        self._delivery_limit = delivery_limit
        self._ready: asyncio.Queue[_Message] = asyncio.Queue()
        self._inflight = asyncio.Semaphore(0)  # replaced by consume()
        self.dead_letters: list[bytes] = []

    async def __aenter__(self) -> MemoryQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def publish(self, job_id: UUID, original: tuple[str, str] | None = None) -> None:
        self.publish_raw(encode(job_id, original))

    def publish_raw(self, body: bytes) -> None:
        self._ready.put_nowait(_Message(body))

    def _requeue(self, message: _Message) -> None:
        # Like a quorum queue's delivery-limit: past it, the message is dead-lettered.
        if message.deliveries > self._delivery_limit:
            self.dead_letters.append(message.body)
        else:
            self._ready.put_nowait(message)

    async def stats(self) -> QueueStats:
        return QueueStats(ready=self._ready.qsize(), dead=len(self.dead_letters))

    async def consume(self, handler: Callable[[Delivery], Awaitable[None]], prefetch: int) -> _MemoryConsumer:
        self._inflight = asyncio.Semaphore(prefetch)
        return _MemoryConsumer(asyncio.create_task(self._pump(handler), name="memory-queue-consumer"))

    async def _pump(self, handler: Callable[[Delivery], Awaitable[None]]) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while True:
            await self._inflight.acquire()
            message = await self._ready.get()
            message.deliveries += 1
            delivery = _MemoryDelivery(self, message, redelivered=message.deliveries > 1)
            task = asyncio.create_task(self._run(handler, delivery))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _run(self, handler: Callable[[Delivery], Awaitable[None]], delivery: _MemoryDelivery) -> None:
        try:
            await handler(delivery)
        finally:
            # A handler that returns (or dies) without settling gives the message back,
            # as a closed AMQP channel would.
            if not delivery.settled:
                await delivery.retry()
