"""What the numbers were measured on: CPU, cores, memory, OS, Python, and the image libraries' versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

from bench.corpus import CACHE

__all__ = ["describe", "filesystem"]


def _first(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.M)
    return found.group(1).strip() if found else None


def _command(args: list[str]) -> str:
    if shutil.which(args[0]) is None:
        return ""
    from bench.renderers import clean_env

    done = subprocess.run(args, env=clean_env(), capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def describe() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    os_release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    from imgpipe.imaging.kernel import library_versions

    libs = library_versions()
    djpeg = _first(r"(libjpeg-turbo version [\d.]+)", _command(["djpeg", "-version"]))
    vips_cli = _first(r"(libvips [\d.]+)", _command(["vipsthumbnail", "--vips-version"]))
    return {
        "cpu": _first(r"^model name\s*:\s*(.*)$", cpuinfo) or platform.processor() or "unknown",
        "cores": f"{len(os.sched_getaffinity(0))} usable ({psutil.cpu_count(logical=False)} physical, "
        f"{psutil.cpu_count()} logical)",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": (_first(r'^PRETTY_NAME="?([^"\n]*)', os_release) or platform.system()) + f", kernel {platform.release()}",
        "python": sys.version.split()[0],
        "libvips (pyvips-binary, the kernel)": libs["libvips"],
        "pyvips": libs["pyvips"],
        "Pillow": libs["pillow"],
        "pillow-heif / libheif": f"{libs['pillow-heif']} / {libs['libheif']}",
        "libavif (Pillow)": libs["libavif (Pillow)"],
        "libjpeg (Pillow)": libs["libjpeg (Pillow)"],
        "djpeg, tjbench (Debian libjpeg-turbo-progs)": djpeg or "not installed",
        "vipsthumbnail (Debian libvips-tools)": vips_cli or "not installed",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "the stacks' folder": f"`bench/.cache/runs`: {filesystem(str(CACHE))}",
    }


def filesystem(path: str, ext4: Path = Path("/sys/fs/ext4")) -> str:
    """The file system ``path`` is on; for ext4, whether it keeps a journal.

    Without one, ext4 passes over every recently deleted inode each time it creates a file
    (``bench.stacks.release``), a cost a stack's API process pays on each upload.
    """
    real = os.path.realpath(path)
    mounts = [p for p in psutil.disk_partitions(all=True) if os.path.commonpath([real, p.mountpoint]) == p.mountpoint]
    if not mounts:
        return "unknown"
    mount = max(mounts, key=lambda p: len(p.mountpoint))
    found = f"{mount.fstype} ({mount.device})"
    task = ext4 / Path(mount.device).name / "journal_task"
    if mount.fstype == "ext4" and task.exists():
        found += ", no journal" if task.read_text().strip() == "<none>" else ", with a journal"
    return found
