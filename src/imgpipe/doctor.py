"""``imgpipe doctor``: native library versions, and whether each configured backend answers."""

from __future__ import annotations

import platform
import sys

from imgpipe.config import Settings

__all__ = ["examine"]

_TIMEOUT = 5.0


async def examine(settings: Settings) -> dict[str, dict[str, str]]:
    from imgpipe.bootstrap import build_services, schema_status
    from imgpipe.imaging.kernel import library_versions
    from imgpipe.services.health import check_backends

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    versions.update({k: str(v) for k, v in library_versions().items()})
    backends = {
        "database": settings.database.url.split("@")[-1],
        "broker": settings.broker_url.split("@")[-1],
        "storage": type(settings.storage).__name__,
    }
    async with build_services(settings) as svc:
        answers = await check_backends(jobs=svc.jobs, queue=svc.queue, store=svc.store, within=_TIMEOUT)
    checks = {name: answer if answer == "ok" else f"FAILED: {answer}" for name, answer in answers.items()}
    checks["schema"] = await schema_status(settings)
    return {"versions": versions, "backends": backends, "checks": checks}
