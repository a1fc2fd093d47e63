"""imgpipe's SigV4 signer gives the very signatures botocore (the reference implementation) makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from imgpipe.adapters.storage.sigv4 import Signer, canonical_path, canonical_query

AT = datetime(2026, 11, 28, 23, 59, 58, tzinfo=UTC)
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINTS = [
    ("http://localhost:9000", "us-east-1", "0b6f1c9e-8d2a-4c47-9a55-1f1e2d3c4b5a/thumbnail.jpg"),
    ("https://images.example.com", "eu-central-1", "a b+c%d/ü.jpg"),  # encoding of odd keys
    ("http://127.0.0.1:80", "us-east-1", "k.webp"),  # a default port is left out of the signed host
    ("https://cdn.example.com:8443/s3", "us-west-2", "x/y.png"),  # behind a proxy, under a path
]


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: AT.replace(tzinfo=None))


@pytest.mark.parametrize(("endpoint", "region", "key"), ENDPOINTS)
def test_a_presigned_url_matches_botocores_to_the_signature(endpoint: str, region: str, key: str) -> None:
    ours = Signer(endpoint, AK, SK, region).presigned_get("images-processed", key, timedelta(hours=1), now=AT)
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    theirs = client.generate_presigned_url(
        "get_object", Params={"Bucket": "images-processed", "Key": key}, ExpiresIn=3600
    )
    a, b = urlsplit(ours), urlsplit(theirs)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert parse_qs(a.query) == parse_qs(b.query)  # the signature included


@pytest.mark.parametrize(("endpoint", "region", "key"), ENDPOINTS)
@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("PUT", {}),
        ("GET", {}),
        ("DELETE", {}),
        ("GET", {"list-type": "2", "prefix": "a b/", "continuation-token": "x+y/z=="}),
    ],
)
def test_request_headers_match_botocores_unsigned_payload_signature(
    endpoint: str, region: str, key: str, method: str, query: dict[str, str]
) -> None:
    signer = Signer(endpoint, AK, SK, region)
    path = canonical_path(signer.prefix, "images-original", key)
    ours = signer.headers(method, path, query, now=AT)

    url = f"{signer.origin}{path}" + (f"?{canonical_query(query)}" if query else "")
    request = AWSRequest(method=method, url=url, data=b"ignored: the payload is not signed")
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    botocore.auth.S3SigV4Auth(Credentials(AK, SK), "s3", region).add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours["Authorization"] == request.headers["Authorization"]


def test_the_signing_key_follows_the_day() -> None:
    signer = Signer("http://localhost:9000", "AK", "SK", "us-east-1")
    today = signer.presigned_get("b", "k", timedelta(minutes=5), now=AT)
    tomorrow = signer.presigned_get("b", "k", timedelta(minutes=5), now=AT + timedelta(seconds=3))
    assert "20261128%2Fus-east-1" in today and "20261129%2Fus-east-1" in tomorrow
    assert parse_qs(urlsplit(today).query)["X-Amz-Signature"] != parse_qs(urlsplit(tomorrow).query)["X-Amz-Signature"]
