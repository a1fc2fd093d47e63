"""A server stack whose links to PostgreSQL, RabbitMQ and S3 each run through a fault proxy of their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from support.faultproxy import FaultProxy
from support.stacks import ServerStack

__all__ = ["FaultyStack", "Links", "role_env"]


@dataclass
class Links:
    """One fault proxy per server, for one role (the API's links, or the workers')."""

    postgres: FaultProxy
    rabbitmq: FaultProxy
    s3: FaultProxy

    def all(self) -> list[FaultProxy]:
        return [self.postgres, self.rabbitmq, self.s3]


@dataclass
class FaultyStack:
    stack: ServerStack
    api: Links
    worker: Links
    env: dict[str, str] = field(default_factory=dict)


def _through(url: str, proxy: FaultProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()


def role_env(links: Links, env: dict[str, str]) -> dict[str, str]:
    return {
        "IMGPIPE_DATABASE_URL": _through(env["IMGPIPE_DATABASE_URL"], links.postgres),
        "IMGPIPE_BROKER_URL": _through(env["IMGPIPE_BROKER_URL"], links.rabbitmq),
        "IMGPIPE_S3_ENDPOINT_URL": _through(env["IMGPIPE_S3_ENDPOINT_URL"], links.s3),
    }
