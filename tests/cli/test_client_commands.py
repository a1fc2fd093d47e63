"""The real ``imgpipe`` client commands against the real ``imgpipe run``: upload, status, get, ls."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

from support.services import free_port
from support.stacks import EmbeddedStack

if TYPE_CHECKING:
    from cli.conftest import Imgpipe

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
IMAGES = [
    CORPUS / "exif-orientation/jpeg-recurser/Landscape_6.jpg",
    CORPUS / "formats/png/transparent.png",
    CORPUS / "formats/webp/hopper_lossy.webp",
]
NOT_AN_IMAGE = "The file is not an image in a supported format"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three images (one in a subfolder), a text file, and hidden files that must be skipped."""
    root = tmp_path / "photos"
    (root / "more").mkdir(parents=True)
    (root / ".cache").mkdir()
    shutil.copy(IMAGES[0], root)
    shutil.copy(IMAGES[1], root)
    shutil.copy(IMAGES[2], root / "more")
    (root / "notes.txt").write_text("shopping list: milk, bread\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    shutil.copy(IMAGES[1], root / ".cache" / "hidden.png")
    return root


@pytest.fixture(scope="module")
def done_job(imgpipe_server: EmbeddedStack) -> dict[str, Any]:
    with httpx.Client(base_url=imgpipe_server.url, timeout=40) as client, IMAGES[0].open("rb") as photo:
        job: dict[str, Any] = client.post("/api/v1/images", files={"file": photo}).json()
        while job["status"] not in ("DONE", "FAILED"):
            job = client.get(f"/api/v1/images/{job['id']}", params={"wait": 30}).json()
    assert job["status"] == "DONE", job
    return job


def fits_256(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return 0 < max(image.size) <= 256


def test_uploading_a_folder_with_wait_and_json_reports_three_done_jobs_and_one_refusal_and_exits_1(
    imgpipe: Imgpipe, folder: Path
) -> None:
    result = imgpipe("upload", folder, "--wait", "--json")

    assert result.returncode == 1, result.stderr
    results = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert set(results) == {"Landscape_6.jpg", "transparent.png", "hopper_lossy.webp", "notes.txt"}
    for image in IMAGES:
        job = results[image.name]["job"]
        assert results[image.name]["accepted"] and results[image.name]["problem"] is None
        assert job["status"] == "DONE"
        assert {v["type"] for v in job["variants"]} == {"original", "thumbnail"}
    refused = results["notes.txt"]
    assert refused["accepted"] is False and refused["job"] is None
    assert refused["problem"]["status"] == 415
    assert refused["problem"]["code"] == "unsupported_format"
    assert refused["problem"]["detail"].startswith(NOT_AN_IMAGE)
    assert "Traceback" not in result.stderr


def test_uploading_only_images_named_and_globbed_exits_0_with_a_readable_summary(
    imgpipe: Imgpipe, folder: Path
) -> None:
    result = imgpipe("upload", folder / "Landscape_6.jpg", str(folder / "more" / "*.webp"), "--wait")

    assert result.returncode == 0, result.stderr
    assert "Landscape_6.jpg" in result.stdout and "hopper_lossy.webp" in result.stdout
    assert result.stdout.count("DONE") == 2


def test_a_refused_file_prints_the_servers_detail_and_exits_1(imgpipe: Imgpipe, folder: Path) -> None:
    result = imgpipe("upload", folder / "notes.txt")

    assert result.returncode == 1
    assert "refused (415)" in result.stdout
    assert NOT_AN_IMAGE in " ".join(result.stdout.split())


def test_an_image_that_fails_processing_is_reported_with_its_error_and_exits_1(imgpipe: Imgpipe) -> None:
    result = imgpipe("upload", CORPUS / "png-suite/xcsn0g01.png", "--wait", "--json")

    assert result.returncode == 1
    [outcome] = json.loads(result.stdout)
    assert outcome["accepted"] and outcome["job"]["status"] == "FAILED"
    assert outcome["job"]["error"]["code"] == "corrupt_image"


def test_status_json_reports_the_job_as_the_api_does(imgpipe: Imgpipe, done_job: dict[str, Any]) -> None:
    result = imgpipe("status", done_job["id"], "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == done_job


def test_status_without_json_shows_the_job_for_people(imgpipe: Imgpipe, done_job: dict[str, Any]) -> None:
    result = imgpipe("status", done_job["id"])

    assert result.returncode == 0, result.stderr
    for expected in (done_job["id"], "DONE", "Landscape_6.jpg", "thumbnail", "original"):
        assert expected in result.stdout


def test_status_wait_follows_a_fresh_upload_to_done(imgpipe: Imgpipe) -> None:
    uploaded = imgpipe("upload", IMAGES[1], "--json")
    job_id = json.loads(uploaded.stdout)[0]["job"]["id"]

    result = imgpipe("status", job_id, "--wait", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "DONE"


def test_get_writes_the_thumbnail_to_the_given_file_and_it_fits_256(
    imgpipe: Imgpipe, done_job: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "thumb.jpg"

    result = imgpipe("get", done_job["id"], "--variant", "thumbnail", "-o", target)

    assert result.returncode == 0, result.stderr
    assert fits_256(target.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == ["thumb.jpg"], "no partial file is left behind"


def test_get_without_output_names_the_file_after_job_and_variant_in_the_current_folder(
    imgpipe: Imgpipe, done_job: dict[str, Any], tmp_path: Path
) -> None:
    result = imgpipe("get", done_job["id"], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert fits_256((tmp_path / f"{done_job['id']}-thumbnail.jpg").read_bytes())


def test_get_to_dash_writes_the_bytes_to_stdout(imgpipe_server: EmbeddedStack, done_job: dict[str, Any]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imgpipe.cli", "get", done_job["id"], "-o", "-", "--api", imgpipe_server.url],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert fits_256(result.stdout)


def test_ls_limit_2_json_lists_the_two_newest_jobs(
    imgpipe: Imgpipe, imgpipe_server: EmbeddedStack, done_job: dict[str, Any]
) -> None:
    result = imgpipe("ls", "--limit", "2", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    newest = httpx.get(f"{imgpipe_server.url}/api/v1/images", params={"limit": 3}).json()["items"]
    assert [job["id"] for job in listed["items"]] == [job["id"] for job in newest[:2]]
    assert (listed["next_cursor"] is not None) == (len(newest) > 2)


def test_an_unknown_job_id_prints_the_servers_detail_and_exits_1(imgpipe: Imgpipe) -> None:
    job_id = uuid.uuid4()

    result = imgpipe("status", str(job_id))

    assert result.returncode == 1
    assert result.stderr.strip() == f"imgpipe: No job has the id {job_id}."


def test_a_missing_file_is_reported_before_anything_is_sent(imgpipe: Imgpipe, tmp_path: Path) -> None:
    result = imgpipe("upload", tmp_path / "nope.jpg")

    assert result.returncode == 2
    assert result.stderr.strip() == f"imgpipe: no such file or folder: {tmp_path / 'nope.jpg'}"


@pytest.mark.parametrize(
    "command",
    [["upload", str(IMAGES[1])], ["status", str(uuid.UUID(int=1))], ["get", str(uuid.UUID(int=1))], ["ls"]],
    ids=["upload", "status", "get", "ls"],
)
def test_an_unreachable_server_gives_one_clear_line_and_exit_2_without_a_traceback(
    imgpipe: Imgpipe, command: list[str]
) -> None:
    api = f"http://127.0.0.1:{free_port()}"

    result = imgpipe(*command, "--api", api)

    assert result.returncode == 2
    assert result.stderr == f"imgpipe: cannot reach imgpipe at {api}: connection refused\n"
    assert result.stdout == ""
