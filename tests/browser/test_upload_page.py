"""The upload page in real headless Chromium against the real ``imgpipe run``: pick, drop, watch, download."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image

from support.stacks import EmbeddedStack

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from browser.conftest import OpenPage, Screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PHOTO = CORPUS / "exif-orientation/jpeg-recurser/Landscape_6.jpg"  # 1800x1200 photo, EXIF orientation 6
THREE = [
    CORPUS / "formats/jpeg/flower2.jpg",
    CORPUS / "formats/png/transparent.png",
    CORPUS / "formats/webp/hopper_lossy.webp",
]
TINY = CORPUS / "png-suite/basn2c08.png"
CORRUPT = CORPUS / "png-suite/xcsn0g01.png"  # a sound header, so accepted; its pixel data fails to decode
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
PROCESSING_TIMEOUT_MS = 30_000


def card_of(page: Page, name: str) -> Locator:
    return page.get_by_test_id("job-card").filter(has=page.get_by_test_id("job-name").get_by_text(name, exact=True))


def expect_done(card: Locator) -> None:
    from playwright.sync_api import expect

    expect(card.get_by_test_id("job-status")).to_have_text("DONE", timeout=PROCESSING_TIMEOUT_MS)
    expect(card.get_by_test_id("thumbnail")).to_be_visible()


def natural_size(img: Locator) -> tuple[int, int]:
    width, height = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return int(width), int(height)


def slow_down_uploads(page: Page, *, bytes_per_second: int) -> None:
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second},
    )


def gallery_ids(page: Page) -> list[str]:
    ids: list[str] = page.get_by_test_id("gallery-item").evaluate_all("tiles => tiles.map(t => t.dataset.jobId)")
    return ids


def server_ids(server: EmbeddedStack, limit: int = 100) -> list[str]:
    page = httpx.get(f"{server.url}/api/v1/images", params={"limit": limit}).json()
    return [job["id"] for job in page["items"]]


def test_a_photo_picked_with_the_file_input_uploads_and_shows_its_thumbnail_and_download(
    page: Page, screenshot: Screenshot, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    screenshot(page, "1-empty")
    slow_down_uploads(page, bytes_per_second=200_000)  # ~2 s for the photo: long enough to see the bar move
    page.get_by_test_id("file-input").set_input_files(PHOTO)
    card = card_of(page, PHOTO.name)
    expect(card.get_by_test_id("job-status")).to_have_text("UPLOADING")
    progress = card.get_by_test_id("upload-progress")
    expect(progress).to_be_visible()
    page.wait_for_function(
        "bar => bar.value > 0 && bar.value < 100", arg=progress.element_handle(), polling=50, timeout=10_000
    )
    screenshot(page, "2-uploading")

    expect_done(card)
    width, height = natural_size(card.get_by_test_id("thumbnail"))
    assert 0 < width <= 256 and 0 < height <= 256
    assert width > height, "EXIF orientation 6 is applied: the photo is shown upright, landscape"
    expect(progress).to_be_hidden()
    expect(card.get_by_test_id("original")).to_be_visible()
    expect(card.get_by_test_id("original-facts")).to_contain_text("JPEG")
    expect(card.get_by_test_id("job-json")).to_have_attribute(
        "href", f"{page.url}api/v1/images/{card.get_attribute('data-job-id')}"
    )
    tile = page.locator(f'[data-testid="gallery-item"][data-job-id="{card.get_attribute("data-job-id")}"]')
    expect(tile.get_by_test_id("gallery-status")).to_have_text("DONE")
    expect(tile.locator("img")).to_be_visible()
    assert page.locator("img:not([alt])").count() == 0, "every image has alt text"
    screenshot(page, "3-done")

    with page.expect_download() as download_info:
        card.get_by_test_id("download-thumbnail").click()
    download = download_info.value
    assert download.suggested_filename.endswith("-thumbnail.jpg")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with Image.open(saved) as thumbnail:
        thumbnail.load()
        assert max(thumbnail.size) <= 256 and thumbnail.size == (width, height)


def test_a_photo_dropped_on_the_drop_zone_uploads_and_finishes(page: Page, screenshot: Screenshot) -> None:
    image = CORPUS / "formats/png/transparent.png"
    page.evaluate(
        """({name, type, data}) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type}));
            const zone = document.querySelector('[data-testid="drop-zone"]');
            for (const kind of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(kind, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        {"name": "dropped.png", "type": "image/png", "data": base64.b64encode(image.read_bytes()).decode()},
    )
    card = card_of(page, "dropped.png")
    expect_done(card)
    assert natural_size(card.get_by_test_id("thumbnail")) == (200, 150)  # small images are not enlarged
    screenshot(page, "done")


def test_files_that_are_not_images_show_the_servers_reason_and_no_stack_trace(
    page: Page, screenshot: Screenshot, imgpipe_server: EmbeddedStack
) -> None:
    from playwright.sync_api import expect

    html = b"<!doctype html><html><body><script>alert(1)</script></body></html>\n"
    answer = httpx.post(f"{imgpipe_server.url}/api/v1/images", files={"file": ("page.jpg", html, "image/jpeg")})
    assert answer.status_code == 415
    detail = answer.json()["detail"]

    page.get_by_test_id("file-input").set_input_files(
        [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"shopping list: milk, bread\n"},
            {"name": "page.jpg", "mimeType": "image/jpeg", "buffer": html},
        ]
    )
    for name in ("notes.txt", "page.jpg"):
        card = card_of(page, name)
        expect(card.get_by_test_id("job-status")).to_have_text("REJECTED")
        expect(card.get_by_test_id("error")).to_have_text(detail)
        expect(card.get_by_test_id("error")).not_to_contain_text("Traceback")
    expect(page.get_by_test_id("live-region")).to_contain_text("refused")
    screenshot(page, "rejected")


def test_an_image_that_fails_processing_shows_the_jobs_error_message(
    page: Page, screenshot: Screenshot, imgpipe_server: EmbeddedStack
) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("file-input").set_input_files(CORRUPT)
    card = card_of(page, CORRUPT.name)
    expect(card.get_by_test_id("job-status")).to_have_text("FAILED", timeout=PROCESSING_TIMEOUT_MS)
    job = httpx.get(f"{imgpipe_server.url}/api/v1/images/{card.get_attribute('data-job-id')}").json()
    expect(card.get_by_test_id("error")).to_have_text(job["error"]["message"])
    expect(card.get_by_test_id("thumbnail")).to_be_hidden()
    expect(page.get_by_test_id("live-region")).to_contain_text("failed")
    screenshot(page, "failed")


def test_three_images_uploaded_at_once_all_finish_and_the_gallery_lists_them_newest_first_after_a_reload(
    page: Page, screenshot: Screenshot, imgpipe_server: EmbeddedStack
) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("file-input").set_input_files(THREE)
    cards = [card_of(page, path.name) for path in THREE]
    for card in cards:
        expect_done(card)
    ours = {card.get_attribute("data-job-id") for card in cards}
    done = screenshot(page, "done")
    if os.environ.get("IMGPIPE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(done, DOCS_SCREENSHOT)

    page.reload()
    expect(page.get_by_test_id("gallery-item").first).to_be_visible()
    listed = gallery_ids(page)
    assert set(listed[:3]) == ours, "the newest three tiles are the three uploads"
    assert listed == server_ids(imgpipe_server)[: len(listed)], "tiles follow the API's newest-first order"
    for job_id in ours:
        tile = page.locator(f'[data-testid="gallery-item"][data-job-id="{job_id}"]')
        expect(tile.get_by_test_id("gallery-status")).to_have_text("DONE")
        expect(tile.locator("img")).to_be_visible()
    screenshot(page, "gallery-after-reload")


def test_load_more_adds_the_next_older_page_of_the_gallery_without_repeats(
    open_page: OpenPage, screenshot: Screenshot, imgpipe_server: EmbeddedStack
) -> None:
    from playwright.sync_api import expect

    with httpx.Client(base_url=imgpipe_server.url) as client:
        for i in range(13):
            answer = client.post("/api/v1/images", files={"file": (f"tiny-{i}.png", TINY.read_bytes(), "image/png")})
            assert answer.status_code == 202
    page = open_page()
    expect(page.get_by_test_id("gallery-item")).to_have_count(12)
    load_more = page.get_by_test_id("load-more")
    expect(load_more).to_be_visible()
    load_more.click()
    expected = server_ids(imgpipe_server)[:24]
    expect(page.get_by_test_id("gallery-item")).to_have_count(len(expected))
    assert gallery_ids(page) == expected
    screenshot(page, "after-load-more")


def test_the_page_is_served_with_a_strict_content_security_policy_and_works_under_it(
    open_page: OpenPage, screenshot: Screenshot
) -> None:
    from playwright.sync_api import expect

    page = open_page()
    policy = page.request.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' blob: data:" in policy
    expect(page.get_by_test_id("gallery-item").first).to_be_visible()  # the scripts ran
    page.get_by_test_id("file-input").set_input_files(THREE[0])
    card = card_of(page, THREE[0].name)
    expect_done(card)
    expect(card.get_by_test_id("original")).to_be_visible()  # the blob: preview was allowed
    screenshot(page, "done")


def test_the_drop_zone_is_reached_with_the_keyboard_and_shows_its_focus(page: Page, screenshot: Screenshot) -> None:
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
    outline = page.get_by_test_id("drop-zone").evaluate("zone => getComputedStyle(zone).outlineStyle")
    assert outline != "none"
    assert page.get_by_test_id("drop-zone").get_attribute("for") == "file-input"
    screenshot(page, "focused")


def test_on_a_phone_sized_screen_the_page_has_no_horizontal_scroll(open_page: OpenPage, screenshot: Screenshot) -> None:
    page = open_page(viewport={"width": 390, "height": 844})
    page.get_by_test_id("file-input").set_input_files(PHOTO)
    expect_done(card_of(page, PHOTO.name))
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client
    screenshot(page, "phone")
