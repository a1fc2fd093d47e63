"""``HotRoutes``: the two requests every image makes, upload and status, answered past FastAPI's routing.

FastAPI's router, dependency solving and query validation cost 120-180 us of CPU per
status read and about 300 us per upload (in process, against ``hot_routes=False``),
a quarter of a status read's whole cost. This ASGI middleware recognises the two routes on
their plain form and calls the same functions the FastAPI routes call
(``routes.upload_response``, ``routes.status_response``); errors become the same
problem responses. Anything else, including a status query it does not recognise, goes
on to FastAPI, which validates it (a bad ``wait`` is FastAPI's 422) and documents both
routes in OpenAPI.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imgpipe.api import problems, routes
from imgpipe.bootstrap import Services
from imgpipe.domain.errors import ImgpipeError

__all__ = ["HotRoutes"]

_PLAIN_WAIT = re.compile(rb"wait=(\d{1,9}(?:\.\d{1,9})?)(?:&until=(change|final))?")
Handler = Callable[[Request, Services], Awaitable[Response]]
_ITEM = routes.PREFIX + "/"


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = _handler(scope) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request, scope["app"].state.services)
        except ImgpipeError as exc:
            response = problems.for_domain_error(request, exc)
        await response(scope, receive, send)


def _handler(scope: Scope) -> Handler | None:
    if scope.get("root_path"):
        return None  # mounted under a prefix: leave the routing to the framework
    path, method = scope["path"], scope["method"]
    if path == routes.PREFIX:
        return routes.upload_response if method == "POST" else None
    if method != "GET" or not path.startswith(_ITEM):
        return None
    job_id = path[len(_ITEM) :]
    wait = _wait(scope["query_string"])
    if not job_id or "/" in job_id or wait is None:
        return None
    return partial(routes.status_response, job_id=job_id, wait=wait[0], final=wait[1])


def _wait(query: bytes) -> tuple[float, bool] | None:
    """``wait`` and whether ``until=final``, from a query that holds nothing else; None sends it to FastAPI."""
    if not query:
        return 0.0, False
    plain = _PLAIN_WAIT.fullmatch(query)  # digits, in this order: any other spelling is FastAPI's to judge
    if plain is None:
        return None
    wait = float(plain[1])
    return (wait, plain[2] == b"final") if wait <= routes.WAIT_MAX else None
