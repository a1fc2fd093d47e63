"""The JobQueue contract, run against the in-process queue and RabbitMQ alike."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from imgpipe.domain.message import JobMessage, decode
from imgpipe.domain.ports import Delivery


class Inbox:
    """A consumer that records what it got and settles as the test says."""

    def __init__(self, settle: str = "ack", hold: asyncio.Event | None = None) -> None:
        self.settle = settle
        self.hold = hold
        self.got: list[tuple[bytes, bool]] = []
        self.arrived = asyncio.Condition()
        self.unsettled = 0
        self.most_unsettled = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.unsettled += 1
        self.most_unsettled = max(self.most_unsettled, self.unsettled)
        async with self.arrived:
            self.got.append((delivery.body, delivery.redelivered))
            self.arrived.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        self.unsettled -= 1
        await getattr(delivery, self.settle)()

    async def wait_for(self, n: int, timeout: float = 10) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.got) >= n), timeout)


async def until(predicate: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_published_job_reaches_the_consumer(queue: Any) -> None:
    job_id = uuid4()
    await queue.publish(job_id)
    inbox = Inbox()
    consumer = await queue.consume(inbox, prefetch=4)
    await inbox.wait_for(1)
    await consumer.cancel()
    body, redelivered = inbox.got[0]
    assert decode(body).job_id == job_id and not redelivered


async def test_the_originals_location_travels_with_the_message(queue: Any) -> None:
    job_id = uuid4()
    await queue.publish(job_id, ("images-original", f"{job_id}.png"))
    inbox = Inbox()
    consumer = await queue.consume(inbox, prefetch=4)
    await inbox.wait_for(1)
    await consumer.cancel()
    assert decode(inbox.got[0][0]) == JobMessage(job_id, ("images-original", f"{job_id}.png"))


async def test_an_acked_message_is_not_delivered_again(queue: Any) -> None:
    await queue.publish(uuid4())
    inbox = Inbox("ack")
    consumer = await queue.consume(inbox, prefetch=4)
    await inbox.wait_for(1)
    await asyncio.sleep(0.3)
    await consumer.cancel()
    assert len(inbox.got) == 1
    assert (await queue.stats()).ready == 0


async def test_a_retried_message_comes_back_marked_redelivered(queue: Any) -> None:
    job_id = uuid4()
    await queue.publish(job_id)
    inbox = Inbox("retry")
    consumer = await queue.consume(inbox, prefetch=1)
    await inbox.wait_for(2)
    await consumer.cancel()
    assert [decode(b).job_id for b, _ in inbox.got[:2]] == [job_id, job_id]
    assert [r for _, r in inbox.got[:2]] == [False, True]


async def test_a_dead_lettered_message_lands_in_the_dead_letter_queue(queue: Any) -> None:
    await queue.publish(uuid4())
    inbox = Inbox("dead_letter")
    consumer = await queue.consume(inbox, prefetch=1)
    await inbox.wait_for(1)

    async def dead() -> bool:
        return bool((await queue.stats()).dead == 1)

    await until(dead)
    await consumer.cancel()


async def test_a_message_retried_forever_is_dead_lettered_after_the_delivery_limit(queue: Any) -> None:
    # Both fixtures use a delivery limit of 3: the message is delivered 4 times.
    await queue.publish(uuid4())
    inbox = Inbox("retry")
    consumer = await queue.consume(inbox, prefetch=1)

    async def dead() -> bool:
        return bool((await queue.stats()).dead == 1)

    await until(dead)
    await asyncio.sleep(0.3)
    await consumer.cancel()
    assert len(inbox.got) == 4


async def test_prefetch_bounds_the_unsettled_deliveries(queue: Any) -> None:
    for _ in range(6):
        await queue.publish(uuid4())
    release = asyncio.Event()
    inbox = Inbox("ack", hold=release)
    consumer = await queue.consume(inbox, prefetch=2)
    await inbox.wait_for(2)
    await asyncio.sleep(0.3)
    assert len(inbox.got) == 2 and inbox.most_unsettled == 2
    release.set()
    await inbox.wait_for(6)
    await consumer.cancel()
    assert inbox.most_unsettled <= 2


async def test_after_cancel_no_new_messages_arrive(queue: Any) -> None:
    inbox = Inbox("ack")
    consumer = await queue.consume(inbox, prefetch=2)
    await consumer.cancel()
    await queue.publish(uuid4())
    await asyncio.sleep(0.3)
    assert inbox.got == []
    assert (await queue.stats()).ready == 1


async def test_ping_answers_when_the_broker_is_up(queue: Any) -> None:
    await queue.ping()
