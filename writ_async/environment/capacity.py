"""Whether a generated database of a given ``--scale`` fits in this machine's memory.

The generators build the whole database in memory, so a scale the machine cannot hold
would grow until swap stalls the process or the kernel kills it, long after the command
was typed. The commands that generate a database check the scale first, from a measured
size per unit of scale and the memory the kernel says is available.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from writ_async.errors import ConfigError

if TYPE_CHECKING:
    from writ_async.environment.domain import Domain

# The peak memory (bytes) per unit of scale while a database is generated, indexed for
# hashing and (for `writ db generate`) encoded as db.json is each domain's own figure,
# ``Domain.bytes_per_scale``, measured with the process's peak RSS.

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def estimated_bytes(domain: Domain, scale: float) -> int:
    """Peak memory a generated ``domain`` database of ``scale`` needs, estimated."""
    return int(domain.bytes_per_scale * scale)


def available_bytes() -> tuple[int, str] | None:
    """Memory this process can still use and where that figure came from; None if the
    platform says nothing about it (the check is then skipped, not guessed)."""
    found: list[tuple[int, str]] = []
    meminfo = _meminfo_available()
    if meminfo is not None:
        found.append((meminfo, "MemAvailable in /proc/meminfo"))
    else:
        try:
            pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):  # the name is unknown on this platform
            pages = -1
        if pages > 0:
            found.append((pages, "free physical pages (sysconf)"))
    cgroup = _cgroup_headroom()
    if cgroup is not None:
        # A container's limit can be far below the host's free memory: the lower wins.
        found.append((cgroup, "the cgroup's memory.max less memory.current"))
    return min(found) if found else None


def _meminfo_available() -> int | None:
    try:
        text = _MEMINFO.read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024  # the kernel writes kB
    return None


def _cgroup_headroom() -> int | None:
    try:
        limit = (_CGROUP / "memory.max").read_text(encoding="ascii").strip()
        current = (_CGROUP / "memory.current").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not (limit.isdigit() and current.isdigit()):  # "max": no limit
        return None
    return max(0, int(limit) - int(current))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_scale(domain: Domain, scale: float, where: str, key: str) -> None:
    """Refuse, before any work, a scale whose database would not fit in memory.

    ``where`` and ``key`` name what set the scale (``<command line>`` and ``--scale``,
    or a config file and ``domains.airline.scale``) for the error message.
    """
    need = estimated_bytes(domain, scale)
    available = available_bytes()
    if available is None:
        return
    have, source = available
    if need <= have:
        return
    per_unit = domain.bytes_per_scale
    largest = have / per_unit
    raise ConfigError(
        where,
        f"scale {scale:g} needs about {human_bytes(need)} of memory for the generated "
        f"{domain.name} database ({human_bytes(per_unit)} per unit of scale), but only "
        f"{human_bytes(have)} is available ({source}); the largest scale that fits is "
        f"about {largest:.3g}", key)
