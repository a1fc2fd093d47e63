"""``AmqpQueue``: the JobQueue port on RabbitMQ through aio-pika.

A durable quorum queue with a delivery limit and a dead-letter queue, persistent
messages, publisher confirms, manual acks. Connections are robust: aio-pika
reconnects and restores the consumer after a broker restart, and a delivery being
handled when its channel dies is handled to the end. If the broker is
down when imgpipe starts, it keeps trying in the background and ``publish``
raises ``BrokerUnavailable`` until it is back, so the API never hangs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from imgpipe.config import AmqpSettings
from imgpipe.domain.errors import BrokerUnavailable
from imgpipe.domain.message import encode
from imgpipe.domain.ports import Delivery, QueueStats

__all__ = ["AmqpQueue", "dead_letter_queue_name"]

log = logging.getLogger(__name__)

_DLX = "imgpipe.dlx"
# What settling or cancelling can raise once the channel it belongs to is gone.
_GONE = (aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError, RuntimeError)
_RECONNECT_SECONDS = 2.0


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


class _AmqpDelivery:
    def __init__(self, message: AbstractIncomingMessage) -> None:
        self._message = message
        self.body = message.body
        self.redelivered = bool(message.redelivered)

    async def _settle(self, action: Callable[[], Awaitable[None]]) -> None:
        # After a reconnect the old channel is gone and the broker redelivers the
        # message anyway; the idempotent worker makes that harmless.
        with contextlib.suppress(*_GONE):
            await action()

    async def ack(self) -> None:
        await self._settle(self._message.ack)

    async def retry(self) -> None:
        await self._settle(lambda: self._message.nack(requeue=True))

    async def dead_letter(self) -> None:
        await self._settle(lambda: self._message.reject(requeue=False))


class _AmqpConsumer:
    def __init__(self, queue: AbstractQueue, tag: str) -> None:
        self._queue = queue
        self._tag = tag

    async def cancel(self) -> None:
        with contextlib.suppress(*_GONE):
            await self._queue.cancel(self._tag)


class AmqpQueue:
    def __init__(self, cfg: AmqpSettings) -> None:
        self._cfg = cfg
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._connected = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Future[None]] = set()  # deliveries being handled, whatever their channel

    async def __aenter__(self) -> AmqpQueue:
        try:
            await self._connect()
        except BrokerUnavailable as exc:
            log.warning("broker unavailable at start, retrying in the background", extra={"error": str(exc)})
            self._connector = asyncio.create_task(self._keep_connecting(), name="amqp-connect")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._connection is not None:
            await self._connection.close()

    async def _keep_connecting(self) -> None:
        while not self._connected.is_set():
            await asyncio.sleep(_RECONNECT_SECONDS)
            with contextlib.suppress(BrokerUnavailable):
                await self._connect()

    async def _connect(self) -> None:
        """Connect, open the publishing channel and declare the queues; all or nothing."""
        connection: AbstractRobustConnection | None = None
        try:
            connection = await aio_pika.connect_robust(
                self._cfg.url,
                timeout=self._cfg.publish_timeout_seconds,
                client_properties={"connection_name": "imgpipe"},
            )
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await self._declare(channel)
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            await _close_quietly(connection)
            # Not a blip: the queue exists with other arguments (another delivery limit, say).
            log.error(
                "RabbitMQ refused the queue declaration; delete the queue or match its settings",
                extra={"queue": self._cfg.queue, "error": str(exc)},
            )
            raise BrokerUnavailable(f"RabbitMQ refused the queue {self._cfg.queue!r}: {exc}") from exc
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            await _close_quietly(connection)
            raise BrokerUnavailable(f"RabbitMQ did not answer at connect: {type(exc).__name__}") from exc
        self._connection, self._publish_channel = connection, channel
        self._connected.set()

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        dead = dead_letter_queue_name(self._cfg.queue)
        dlx = await channel.declare_exchange(_DLX, aio_pika.ExchangeType.DIRECT, durable=True)
        dlq = await channel.declare_queue(dead, durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(dlx, routing_key=dead)
        return await channel.declare_queue(
            self._cfg.queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                # A poison message is dead-lettered after this many deliveries.
                "x-delivery-limit": self._cfg.delivery_limit,
                "x-dead-letter-exchange": _DLX,
                "x-dead-letter-routing-key": dead,
            },
        )

    def _channel(self) -> AbstractChannel:
        if self._publish_channel is None or self._publish_channel.is_closed:
            raise BrokerUnavailable("RabbitMQ is not connected.")
        return self._publish_channel

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self.stats(), self._cfg.publish_timeout_seconds)
        except TimeoutError as exc:
            raise BrokerUnavailable("RabbitMQ did not answer in time.") from exc

    async def publish(self, job_id: UUID, original: tuple[str, str] | None = None) -> None:
        await self.publish_raw(encode(job_id, original), message_id=str(job_id))

    async def publish_raw(self, body: bytes, *, message_id: str | None = None) -> None:
        channel = self._channel()
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=message_id,
        )
        try:
            # With confirms on, this returns only once the broker has the message
            # safely in the quorum queue.
            await asyncio.wait_for(
                channel.default_exchange.publish(message, routing_key=self._cfg.queue, mandatory=True),
                self._cfg.publish_timeout_seconds,
            )
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            raise BrokerUnavailable(f"RabbitMQ did not confirm the message: {type(exc).__name__}") from exc

    async def consume(self, handler: Callable[[Delivery], Awaitable[None]], prefetch: int) -> _AmqpConsumer:
        await self._connected.wait()
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        queue = await self._declare(channel)

        async def on_message(message: AbstractIncomingMessage) -> None:
            # aiormq runs this in a task of the channel and cancels it when the channel dies. The
            # handler runs in a task of its own instead: a connection blip must not abort the job
            # in hand (and count an attempt against it); the message comes back redelivered, and
            # the worker settles that copy once its own attempt ends.
            handling = asyncio.ensure_future(handler(_AmqpDelivery(message)))
            self._handling.add(handling)
            handling.add_done_callback(self._handling.discard)
            await asyncio.shield(handling)

        tag = await queue.consume(on_message, no_ack=False)
        return _AmqpConsumer(queue, tag)

    async def stats(self) -> QueueStats:
        channel = self._channel()
        try:
            # A fresh passive declare: aio-pika's robust channel would answer from its cache.
            raw = await channel.get_underlay_channel()
            main = await raw.queue_declare(self._cfg.queue, passive=True)
            dead = await raw.queue_declare(dead_letter_queue_name(self._cfg.queue), passive=True)
        except (OSError, aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            raise BrokerUnavailable(f"RabbitMQ did not answer: {type(exc).__name__}") from exc
        return QueueStats(ready=main.message_count or 0, dead=dead.message_count or 0)


async def _close_quietly(connection: AbstractRobustConnection | None) -> None:
    if connection is not None:
        with contextlib.suppress(Exception):
            await connection.close()
