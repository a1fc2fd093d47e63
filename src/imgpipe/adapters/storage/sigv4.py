"""AWS Signature Version 4 for S3: request headers and presigned GET URLs, path-style, unsigned payloads.

The same signatures botocore makes (tests compare the two), for a few HMACs instead
of botocore's event and endpoint machinery: that machinery cost 2-3 ms of CPU per
request here, more than the rest of storing an original. Bodies are sent as
UNSIGNED-PAYLOAD, which S3 and MinIO accept: hashing every body with SHA-256 cost
5 ms per 2 MB upload; TLS (or the compose stack's private network) carries the
bodies' integrity, and imgpipe records each object's own BLAKE3 checksum.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

__all__ = ["Signer", "canonical_path", "canonical_query"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED = "UNSIGNED-PAYLOAD"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _quote(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_path(prefix: str, bucket: str, key: str = "") -> str:
    """``/prefix/bucket/key`` with each character outside ``A-Za-z0-9-_.~/`` percent-encoded, as S3 signs it."""
    path = f"{prefix}/{bucket}" + (f"/{key}" if key else "")
    return quote(path, safe="/-_.~")


class Signer:
    """Signs for one endpoint (its host, and any path prefix a proxy adds) with one key pair and region."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str) -> None:
        parts = urlsplit(endpoint)
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        # The Host header as a client sends it (no default port) is what gets signed.
        hostname = parts.hostname or ""
        self.host = f"[{hostname}]" if ":" in hostname else hostname  # an IPv6 literal keeps its brackets
        if parts.port is not None and parts.port != default_port:
            self.host = f"{self.host}:{parts.port}"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        self._access_key = access_key
        self._secret = secret_key
        self._region = region
        self._day = ""
        self._key = b""

    def headers(
        self, method: str, path: str, query: dict[str, str] | None = None, now: datetime | None = None
    ) -> dict[str, str]:
        """The headers that sign a request for ``path`` (from ``canonical_path``) and ``query``."""
        day, stamp, scope = self._when(now)
        signed = "host;x-amz-content-sha256;x-amz-date"
        canonical = "\n".join(
            (
                method,
                path,
                canonical_query(query or {}),
                f"host:{self.host}\nx-amz-content-sha256:{_UNSIGNED}\nx-amz-date:{stamp}\n",
                signed,
                _UNSIGNED,
            )
        )
        signature = self._sign(day, stamp, scope, canonical)
        return {
            "x-amz-date": stamp,
            "x-amz-content-sha256": _UNSIGNED,
            "Authorization": (
                f"{_ALGORITHM} Credential={self._access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
            ),
        }

    def presigned_get(self, bucket: str, key: str, expires: timedelta, now: datetime | None = None) -> str:
        """A GET URL anyone may open until it expires, signed for ``host`` only."""
        day, stamp, scope = self._when(now)
        path = canonical_path(self.prefix, bucket, key)
        query = canonical_query(
            {
                "X-Amz-Algorithm": _ALGORITHM,
                "X-Amz-Credential": f"{self._access_key}/{scope}",
                "X-Amz-Date": stamp,
                "X-Amz-Expires": str(int(expires.total_seconds())),
                "X-Amz-SignedHeaders": "host",
            }
        )
        canonical = f"GET\n{path}\n{query}\nhost:{self.host}\n\nhost\n{_UNSIGNED}"
        return f"{self.origin}{path}?{query}&X-Amz-Signature={self._sign(day, stamp, scope, canonical)}"

    def _when(self, now: datetime | None) -> tuple[str, str, str]:
        """(day, timestamp, credential scope) of a signature made at ``now`` (default: this moment)."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        day = now.strftime("%Y%m%d")
        return day, now.strftime("%Y%m%dT%H%M%SZ"), f"{day}/{self._region}/s3/aws4_request"

    def _sign(self, day: str, stamp: str, scope: str, canonical: str) -> str:
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        return hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:  # derived once a day
            key = _hmac(f"AWS4{self._secret}".encode(), day)
            for part in (self._region, "s3", "aws4_request"):
                key = _hmac(key, part)
            self._day, self._key = day, key
        return self._key


def canonical_query(query: dict[str, str]) -> str:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
