"""Job queues: RabbitMQ (aio-pika, quorum queue, confirms) and an in-process queue with the same semantics."""
