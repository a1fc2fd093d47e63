"""The image routes of the HTTP contract: upload, status (with long-poll), list, variant download."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from imgpipe.api.problems import PROBLEM_RESPONSES, problem
from imgpipe.api.schemas import JobOut, JobPage, decode_cursor, encode_cursor, job_out
from imgpipe.api.upload import UploadSlots, receive_upload
from imgpipe.bootstrap import Services
from imgpipe.domain.errors import JobNotFound
from imgpipe.domain.job import Job
from imgpipe.services import queries
from imgpipe.services.uploads import Upload, accept_upload

__all__ = ["PREFIX", "WAIT_MAX", "router", "status_response", "upload_response"]

PREFIX = "/api/v1/images"
WAIT_MAX = 60.0

router = APIRouter(prefix=PREFIX, tags=["images"])

_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The image."}},
                }
            }
        },
    }
}


async def services(request: Request) -> Services:
    # async: FastAPI would run a plain function in a thread pool, for every request.
    found: Services = request.app.state.services
    return found


Svc = Annotated[Services, Depends(services)]


def _job_id(raw: str) -> UUID:
    # Any string that is not one of our ids names no job: 404, like an unknown id.
    try:
        return UUID(raw)
    except ValueError:
        raise JobNotFound(f"No job has the id {raw[:64]!r}.") from None


def _render(job: Job, request: Request, svc: Services) -> dict[str, Any]:
    presign = {v.type: svc.store.presigned_url(v.bucket, v.key, svc.policy.presign_expires) for v in job.variants}
    base = str(request.base_url).rstrip("/")
    return job_out(job, base_url=base, presign=presign).model_dump(mode="json")


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Upload an image; its variants are made asynchronously",
    openapi_extra=_MULTIPART,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k != 404},
)
async def upload_image(request: Request, svc: Svc) -> JSONResponse:
    return await upload_response(request, svc)


async def upload_response(request: Request, svc: Services) -> JSONResponse:
    """``POST /api/v1/images``; raises the upload's ImgpipeError. Shared with ``hot.HotRoutes``."""
    slots: UploadSlots = request.app.state.upload_slots
    with slots.take():
        return await _upload(request, svc)


async def _upload(request: Request, svc: Services) -> JSONResponse:
    # Straight into the store as it arrives: for the folder store, accepting it is a rename.
    staged = svc.store.stage(svc.policy.bucket_original)
    try:
        received = await receive_upload(
            request,
            staged,
            max_bytes=svc.settings.max_upload_bytes,
            idle_timeout=svc.settings.upload_idle_timeout_seconds,
            total_timeout=svc.settings.upload_timeout_seconds,
        )
        job = await accept_upload(
            Upload(staged=staged, size=received.size, checksum=received.checksum, filename=received.filename),
            jobs=svc.jobs,
            store=svc.store,
            queue=svc.queue,
            policy=svc.policy,
        )
    finally:
        await staged.discard()  # a no-op once committed
    body = _render(job, request, svc)
    return JSONResponse(body, status_code=202, headers={"Location": body["links"]["self"]})


@router.get("", response_model=JobPage, summary="Recent jobs, newest first", responses={422: PROBLEM_RESPONSES[422]})
async def list_images(
    request: Request,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> Any:
    try:
        before = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        return problem(422, "invalid_cursor", str(exc), request.url.path)
    page = await queries.list_jobs(jobs=svc.jobs, limit=limit, before=before)
    return JSONResponse(
        {
            "items": [_render(job, request, svc) for job in page.jobs],
            "next_cursor": encode_cursor(page.next_cursor) if page.next_cursor else None,
        }
    )


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="A job's status, metadata and variants",
    responses={404: PROBLEM_RESPONSES[404]},
)
async def get_image(
    job_id: str,
    request: Request,
    svc: Svc,
    wait: Annotated[
        float,
        Query(
            ge=0, le=WAIT_MAX, description="Long-poll: answer as soon as the status changes, or after this many seconds"
        ),
    ] = 0,
    until: Annotated[
        Literal["change", "final"],
        Query(description="With `wait`: `final` answers only once the job is DONE or FAILED, not at PROCESSING"),
    ] = "change",
) -> Any:
    return await status_response(request, svc, job_id, wait, final=until == "final")


async def status_response(
    request: Request, svc: Services, job_id: str, wait: float, *, final: bool = False
) -> JSONResponse:
    """``GET /api/v1/images/{job_id}``; raises JobNotFound. Shared with ``hot.HotRoutes``."""
    if wait:
        job = await queries.wait_for_change(_job_id(job_id), jobs=svc.jobs, within=wait, final=final)
    else:
        job = await queries.get_job(_job_id(job_id), jobs=svc.jobs)
    # A Response goes out as it is: the body was built from JobOut already, no second validation.
    return JSONResponse(_render(job, request, svc))


@router.get(
    "/{job_id}/variants/{variant_type}",
    summary="The bytes of one variant (original or thumbnail)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/*": {}}}, 404: PROBLEM_RESPONSES[404]},
)
async def get_variant(job_id: str, variant_type: str, svc: Svc) -> StreamingResponse:
    job = await queries.get_job(_job_id(job_id), jobs=svc.jobs)
    variant, stream = await queries.open_variant(job, variant_type, store=svc.store)
    extension = variant.key.rsplit(".", 1)[-1]
    headers = {
        "Content-Length": str(stream.size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": f'inline; filename="{job.id}-{variant.type}.{extension}"',
        "Cache-Control": "private, max-age=3600",
    }
    if variant.checksum:
        headers["ETag"] = f'"{variant.checksum.partition(":")[2]}"'
    # The sniffed type, never the client's: a polyglot is served as the image it claimed to be.
    return StreamingResponse(stream.chunks, media_type=variant.content_type, headers=headers)
