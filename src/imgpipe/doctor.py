"""``imgpipe doctor``: native library versions, and whether each configured backend answers."""

from __future__ import annotations

import asyncio
import platform
import sys
from typing import Any

from imgpipe.config import Settings

__all__ = ["examine"]

_TIMEOUT = 5.0


async def examine(settings: Settings) -> dict[str, dict[str, str]]:
    from imgpipe.bootstrap import build_services, schema_status
    from imgpipe.imaging.kernel import library_versions

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    versions.update({k: str(v) for k, v in library_versions().items()})
    backends = {
        "database": settings.database.url.split("@")[-1],
        "broker": settings.broker_url.split("@")[-1],
        "storage": type(settings.storage).__name__,
    }
    checks: dict[str, str] = {}
    async with build_services(settings) as svc:
        probes = {"database": svc.jobs.ping(), "broker": svc.queue.ping(), "storage": svc.store.ping()}
        for name, probe in probes.items():
            checks[name] = await _answer(probe)
    checks["schema"] = await schema_status(settings)
    return {"versions": versions, "backends": backends, "checks": checks}


async def _answer(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, _TIMEOUT)
    except Exception as exc:  # doctor reports, it does not crash
        return f"FAILED: {getattr(exc, 'message', None) or type(exc).__name__}"
    return "ok"
