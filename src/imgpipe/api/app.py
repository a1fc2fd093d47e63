"""``create_app(settings)``: the FastAPI application, its lifespan, health checks and the web page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

import imgpipe
from imgpipe.api import problems
from imgpipe.api.hot import HotRoutes
from imgpipe.api.routes import router
from imgpipe.api.upload import UploadSlots
from imgpipe.bootstrap import Services, build_services
from imgpipe.config import Settings
from imgpipe.imaging.types import ImageFormat
from imgpipe.services.health import check_backends

__all__ = ["create_app"]

_READY_TIMEOUT = 3.0
# The page loads only its own scripts and styles; thumbnails come from this origin (or blob: previews).
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    settings: Settings | None = None, *, services: Services | None = None, hot_routes: bool = True
) -> FastAPI:
    """Build the app; it connects to its backends in the lifespan, not here.

    Pass ``services`` when something else (``imgpipe run``) owns them. ``hot_routes=False``
    leaves upload and status to FastAPI's routes too (tests compare the two).
    """
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        async with build_services(settings, listen=True) as built:
            app.state.services = built
            yield

    app = FastAPI(
        title="imgpipe",
        version=imgpipe.__version__,
        summary="Upload images; get thumbnails, made asynchronously.",
        lifespan=lifespan,
    )
    app.state.upload_slots = UploadSlots(settings.max_concurrent_uploads)
    problems.install(app)
    app.include_router(router)
    if hot_routes:
        app.add_middleware(HotRoutes)

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers; checks no dependency")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Readiness: 200 only when the database, broker and storage answer",
        responses={503: problems.PROBLEM_RESPONSES[503]},
    )
    async def ready(request: Request) -> Any:
        svc: Services = request.app.state.services
        report = await check_backends(jobs=svc.jobs, queue=svc.queue, store=svc.store, within=_READY_TIMEOUT)
        failed = [name for name, result in report.items() if result != "ok"]
        if failed:
            return problems.problem(
                503, "not_ready", f"Not ready: {', '.join(failed)} did not answer.", "/ready", checks=report
            )
        return JSONResponse({"status": "ready", "checks": report})

    @app.get("/api/v1/limits", tags=["images"], summary="What this server accepts, so clients can check first")
    async def limits(request: Request) -> dict[str, Any]:
        svc: Services = request.app.state.services
        return {
            "max_upload_bytes": svc.settings.max_upload_bytes,
            "max_pixels": svc.settings.max_pixels,
            "formats": sorted(f.content_type for f in ImageFormat),
            "variants": [{"type": v.name, "width": v.width, "height": v.height} for v in svc.policy.variants],
        }

    static = files("imgpipe.api") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(static / "index.html"), headers=_PAGE_HEADERS)

    return app
