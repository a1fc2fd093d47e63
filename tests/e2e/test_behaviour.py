"""What a user of imgpipe can rely on, checked unchanged against the embedded and the server stack."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from blake3 import blake3
from PIL import Image

from imgpipe.imaging.types import Rendered
from support.corpus import assert_upright_and_faithful, rows
from support.stacks import AnyStack

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PHOTO = CORPUS / "exif-orientation/jpeg-recurser/Landscape_6.jpg"  # stored portrait, EXIF 6: shown landscape
# A 45-byte GIF claiming 65,535 x 65,535 pixels: refused from its header.
GIF_BOMB = b"GIF89a\xff\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02D\x01\x00;"


def upload(
    stack: AnyStack, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg"
) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/v1/images", files={"file": (filename, data, content_type)}, timeout=30)


def wait_final(stack: AnyStack, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{stack.url}/api/v1/images/{job_id}", params={"wait": 5}, timeout=15).json()
        if job["status"] in ("DONE", "FAILED"):
            return job
    raise AssertionError(f"job {job_id} not final after {timeout} s:\n{stack.output()}")


def test_an_upload_is_accepted_with_202_a_location_and_a_pending_job(stack: AnyStack) -> None:
    response = upload(stack, PHOTO.read_bytes(), "Landscape_6.jpg")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "PENDING"
    assert response.headers["location"].endswith(f"/api/v1/images/{body['id']}")
    assert httpx.get(response.headers["location"]).status_code == 200


def test_a_photo_ends_done_with_an_upright_clean_thumbnail_and_its_metadata(stack: AnyStack) -> None:
    data = PHOTO.read_bytes()
    job = wait_final(stack, upload(stack, data, "Landscape_6.jpg").json()["id"])
    assert job["status"] == "DONE", job
    assert job["attempts"] == 1 and job["error"] is None
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    original = job["original"]
    assert original["content_type"] == "image/jpeg" and original["format"] == "jpeg"
    assert original["bytes"] == len(data) and original["filename"] == "Landscape_6.jpg"
    assert (original["width"], original["height"]) == (1800, 1200)  # as displayed: EXIF orientation applied
    assert [v["type"] for v in job["variants"]] == ["original", "thumbnail"]

    thumb_meta = job["variants"][1]
    thumb = httpx.get(thumb_meta["url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert (thumb_meta["width"], thumb_meta["height"]) == (256, 171)
    assert len(thumb.content) == thumb_meta["bytes"]
    # Checksums say what the bytes are: the upload as sent, the thumbnail as served (and its ETag).
    assert original["checksum"] == job["variants"][0]["checksum"] == f"blake3:{blake3(data).hexdigest()}"
    assert thumb_meta["checksum"] == f"blake3:{blake3(thumb.content).hexdigest()}"
    assert thumb.headers["etag"] == f'"{blake3(thumb.content).hexdigest()}"'
    # Clean (no metadata), upright and faithful, as an independent decoder sees the original.
    [row] = [r for r in rows() if r.file == PHOTO]
    assert_upright_and_faithful(row, Rendered(thumb.content, "image/jpeg", 256, 171))


def test_the_original_is_served_byte_for_byte_with_its_sniffed_type(stack: AnyStack) -> None:
    png = io.BytesIO()
    Image.new("RGB", (300, 200), "teal").save(png, "PNG")
    # A PNG sent as "evil.html" with a text/html Content-Type is still a PNG.
    job = wait_final(stack, upload(stack, png.getvalue(), "evil.html", "text/html").json()["id"])
    served = httpx.get(job["variants"][0]["url"])
    assert served.content == png.getvalue()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert job["original"]["filename"] == "evil.html"


def test_an_image_with_alpha_keeps_it_in_a_webp_thumbnail(stack: AnyStack) -> None:
    rgba = io.BytesIO()
    Image.new("RGBA", (600, 400), (255, 0, 0, 64)).save(rgba, "PNG")
    job = wait_final(stack, upload(stack, rgba.getvalue(), "alpha.png", "image/png").json()["id"])
    thumb = job["variants"][1]
    assert thumb["content_type"] == "image/webp" and (thumb["width"], thumb["height"]) == (256, 171)
    image = Image.open(io.BytesIO(httpx.get(thumb["url"]).content))
    assert image.mode == "RGBA" and 50 <= image.getpixel((128, 85))[3] <= 80


def test_a_small_image_is_never_upscaled(stack: AnyStack) -> None:
    small = io.BytesIO()
    Image.new("RGB", (100, 50), "navy").save(small, "JPEG")
    job = wait_final(stack, upload(stack, small.getvalue()).json()["id"])
    assert (job["variants"][1]["width"], job["variants"][1]["height"]) == (100, 50)


def test_a_corrupt_image_ends_failed_with_a_code_and_a_sentence(stack: AnyStack) -> None:
    truncated = (CORPUS / "hostile/truncated/truncated_jpeg.jpg").read_bytes()
    job = wait_final(stack, upload(stack, truncated).json()["id"])
    assert job["status"] == "FAILED"
    assert job["error"]["code"] == "corrupt_image"
    assert job["error"]["message"].endswith(".")
    assert job["attempts"] == 1  # corrupt data is not retried
    assert [v["type"] for v in job["variants"]] == ["original"]


def _assert_refused(stack: AnyStack, response: httpx.Response, status: int, code: str, before: list[str]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["code"] == code and problem["detail"]
    # Nothing left behind: no object, and no job row (the newest job is not new).
    assert stack.keys("original") == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"<html><script>alert(1)</script></html>", 415, "unsupported_format"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', 415, "unsupported_format"),
        (b"%PDF-1.7\n1 0 obj\n", 415, "unsupported_format"),
        (b"PK\x03\x04" + b"\x00" * 100, 415, "unsupported_format"),
        (b"", 400, "empty_upload"),
        (GIF_BOMB, 422, "image_too_large"),
    ],
    ids=["html", "svg", "pdf", "zip", "empty", "gif-bomb"],
)
def test_bad_input_is_refused_at_the_door_and_leaves_nothing_behind(
    stack: AnyStack, body: bytes, status: int, code: str
) -> None:
    def newest() -> list[str]:
        return [j["id"] for j in httpx.get(f"{stack.url}/api/v1/images", params={"limit": 1}).json()["items"]]

    before, newest_before = stack.keys("original"), newest()
    _assert_refused(stack, upload(stack, body, "innocent.jpg"), status, code, before)
    assert newest() == newest_before


def test_an_upload_over_the_byte_limit_gets_413_and_leaves_nothing_behind(stack: AnyStack) -> None:
    before = stack.keys("original")
    too_big = b"\xff\xd8\xff\xe0" + b"\x00" * (16 * 1024 * 1024 + 10)
    _assert_refused(stack, upload(stack, too_big), 413, "upload_too_large", before)


def test_a_request_without_the_file_field_is_a_clear_client_error(stack: AnyStack) -> None:
    response = httpx.post(f"{stack.url}/api/v1/images", files={"picture": ("a.jpg", PHOTO.read_bytes())})
    assert response.status_code == 400
    assert "file" in response.json()["detail"]


def test_an_unknown_job_is_a_404_problem(stack: AnyStack) -> None:
    response = httpx.get(f"{stack.url}/api/v1/images/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    not_an_id = httpx.get(f"{stack.url}/api/v1/images/not-a-uuid")
    assert not_an_id.status_code == 404 and not_an_id.json()["code"] == "job_not_found"


def test_the_limits_are_published_for_clients(stack: AnyStack) -> None:
    limits = httpx.get(f"{stack.url}/api/v1/limits").json()
    assert limits["max_upload_bytes"] == 16 * 1024 * 1024 and limits["max_pixels"] == 100_000_000
    assert "image/heic" in limits["formats"] and "image/svg+xml" not in limits["formats"]
    assert limits["variants"] == [{"type": "thumbnail", "width": 256, "height": 256}]


def test_a_missing_variant_is_a_404_problem(stack: AnyStack) -> None:
    job = wait_final(stack, upload(stack, PHOTO.read_bytes()).json()["id"])
    response = httpx.get(f"{job['links']['self']}/variants/poster")
    assert response.status_code == 404 and response.json()["code"] == "object_not_found"


def test_long_poll_answers_when_the_status_changes_not_at_the_timeout(stack: AnyStack) -> None:
    job_id = upload(stack, PHOTO.read_bytes()).json()["id"]
    started = time.monotonic()
    seen = httpx.get(f"{stack.url}/api/v1/images/{job_id}", params={"wait": 30}, timeout=40).json()
    assert seen["status"] in ("PROCESSING", "DONE")
    assert time.monotonic() - started < 25


def test_long_poll_until_final_answers_once_the_job_is_done(stack: AnyStack) -> None:
    job_id = upload(stack, PHOTO.read_bytes()).json()["id"]
    started = time.monotonic()
    seen = httpx.get(f"{stack.url}/api/v1/images/{job_id}?wait=30&until=final", timeout=40).json()
    assert seen["status"] == "DONE"
    assert "thumbnail" in {v["type"] for v in seen["variants"]}
    assert time.monotonic() - started < 25


def test_the_list_pages_newest_first_without_repeats(stack: AnyStack) -> None:
    mine = [upload(stack, PHOTO.read_bytes()).json()["id"] for _ in range(3)]
    first = httpx.get(f"{stack.url}/api/v1/images", params={"limit": 2}).json()
    second = httpx.get(f"{stack.url}/api/v1/images", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [j["id"] for j in first["items"] + second["items"]]
    assert ids[:3] == list(reversed(mine))
    assert len(set(ids)) == len(ids)
    assert httpx.get(f"{stack.url}/api/v1/images", params={"cursor": "forged"}).status_code == 422


def test_health_and_readiness_answer(stack: AnyStack) -> None:
    assert httpx.get(f"{stack.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.url}/ready").json()
    assert ready["status"] == "ready"
    assert set(ready["checks"]) == {"database", "broker", "storage"}


def test_openapi_documents_the_contract(stack: AnyStack) -> None:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    upload_op = spec["paths"]["/api/v1/images"]["post"]
    assert "202" in upload_op["responses"] and "413" in upload_op["responses"]
    assert "file" in upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert "cursor" in json.dumps(spec["paths"]["/api/v1/images"]["get"]["parameters"])
    assert httpx.get(f"{stack.url}/docs").status_code == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_original_descriptions_curl_commands_work_as_written(stack: AnyStack, tmp_path: Path) -> None:
    shutil.copy(PHOTO, tmp_path / "example.jpg")
    base = stack.url.replace("127.0.0.1", "localhost")
    posted = subprocess.run(
        ["curl", "-s", "-F", "file=@example.jpg", f"{base}/api/v1/images"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    accepted = json.loads(posted.stdout)
    assert accepted["status"] == "PENDING" and accepted["id"]
    wait_final(stack, accepted["id"])
    fetched = subprocess.run(
        ["curl", "-s", f"{base}/api/v1/images/{accepted['id']}"], capture_output=True, text=True, check=True
    )
    done = json.loads(fetched.stdout)
    assert done["id"] == accepted["id"] and done["status"] == "DONE"
    assert [{"type": v["type"]} for v in done["variants"]] == [{"type": "original"}, {"type": "thumbnail"}]


def test_behind_a_trusted_tls_proxy_urls_are_https_on_the_public_host(stack: AnyStack) -> None:
    job_id = upload(stack, PHOTO.read_bytes()).json()["id"]
    proxied = httpx.get(
        f"{stack.url}/api/v1/images/{job_id}",
        headers={"X-Forwarded-Proto": "https", "Host": "images.example.com"},
    ).json()
    assert proxied["links"]["self"] == f"https://images.example.com/api/v1/images/{job_id}"
    assert proxied["variants"][0]["url"].startswith("https://images.example.com/")


def test_every_variant_url_opens_and_s3_adds_a_short_lived_presigned_public_url(stack: AnyStack) -> None:
    data = PHOTO.read_bytes()
    job = wait_final(stack, upload(stack, data).json()["id"])
    for variant in job["variants"]:
        through_api = httpx.get(variant["url"])
        assert through_api.status_code == 200 and len(through_api.content) == variant["bytes"]
        presigned = variant["presigned_url"]
        if stack.env.get("IMGPIPE_STORAGE_URL") != "s3://":
            assert presigned is None  # a local folder has no URLs of its own
            continue
        public = stack.env["IMGPIPE_S3_PUBLIC_ENDPOINT_URL"]
        bucket = stack.env[f"IMGPIPE_BUCKET_{'ORIGINAL' if variant['type'] == 'original' else 'PROCESSED'}"]
        assert presigned.startswith(f"{public}/{bucket}/")  # the public endpoint, path-style
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in presigned and "X-Amz-Expires=900" in presigned
        direct = httpx.get(presigned)
        assert direct.status_code == 200 and direct.content == through_api.content
