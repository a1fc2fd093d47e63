"""imgpipe's own SigV4 presigner gives the very URL botocore (the reference implementation) signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.config import Config

from imgpipe.adapters.storage.presign import Presigner

AT = datetime(2026, 11, 28, 23, 59, 58, tzinfo=UTC)


def botocore_url(endpoint: str, bucket: str, key: str, expires: int, region: str) -> str:
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url: str = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)
    return url


@pytest.mark.parametrize(
    ("endpoint", "region", "key"),
    [
        ("http://localhost:9000", "us-east-1", "0b6f1c9e-8d2a-4c47-9a55-1f1e2d3c4b5a/thumbnail.jpg"),
        ("https://images.example.com", "eu-central-1", "a b+c%d/ü.jpg"),  # encoding of odd keys
        ("http://127.0.0.1:80", "us-east-1", "k.webp"),  # a default port is left out of the host
        ("https://cdn.example.com:8443/s3", "us-west-2", "x/y.png"),  # behind a proxy, under a path
    ],
)
def test_the_url_matches_botocores_to_the_signature(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, region: str, key: str
) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: AT.replace(tzinfo=None))
    ours = Presigner(endpoint, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region).url(
        "images-processed", key, timedelta(hours=1), now=AT
    )
    theirs = botocore_url(endpoint, "images-processed", key, 3600, region)
    a, b = urlsplit(ours), urlsplit(theirs)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert parse_qs(a.query) == parse_qs(b.query)  # the signature included


def test_the_signing_key_follows_the_day() -> None:
    signer = Presigner("http://localhost:9000", "AK", "SK", "us-east-1")
    today = signer.url("b", "k", timedelta(minutes=5), now=AT)
    tomorrow = signer.url("b", "k", timedelta(minutes=5), now=AT + timedelta(seconds=3))
    assert "20261128%2Fus-east-1" in today and "20261129%2Fus-east-1" in tomorrow
    assert parse_qs(urlsplit(today).query)["X-Amz-Signature"] != parse_qs(urlsplit(tomorrow).query)["X-Amz-Signature"]
