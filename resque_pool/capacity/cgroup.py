"""The memory limit of the container this process runs in: its cgroup's, v2 or v1.

One small job: find the process's own memory cgroup and read its limit.

- **cgroup v2**: the ``0::/path`` line of ``/proc/self/cgroup``, under the ``cgroup2``
  mount; the limit is ``memory.max`` (``max``: no limit).
- **cgroup v1**: the line whose controllers include ``memory``, under the ``cgroup`` mount
  with the ``memory`` option; the limit is ``memory.limit_in_bytes`` (a value near 2**63:
  no limit). A machine with both (hybrid) has the memory controller on v1.

Mount points come from ``/proc/self/mountinfo``, never hard-coded. The cgroup's path is
taken relative to the mount's root; when it does not exist under the mount point (a
container with a cgroup namespace, or one whose cgroup is mounted as the root), the mount
point itself is the cgroup. A parent's limit applies to its children, so the smallest
limit from the cgroup up to the mount point counts.

Anything unexpected (no ``/proc``, a file of another shape) is "no limit" with a one-line
``problem`` saying why, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

V2, V1, NONE = "cgroup v2", "cgroup v1", "none"
V2_FILE, V1_FILE = "memory.max", "memory.limit_in_bytes"
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit value (9223372036854771712
# with 4 KiB pages); anything this large is no limit on any machine.
V1_UNLIMITED = 2**62


@dataclass(frozen=True)
class Limit:
    """A container's memory limit: ``bytes`` (None: no limit), where it was read
    (``source``: ``cgroup v2``, ``cgroup v1`` or ``none``; ``path``: the file), and a
    ``problem`` when a file could not be read as expected."""

    bytes: int | None
    source: str = NONE
    path: str | None = None
    problem: str | None = None


def container_limit(proc_self: Path = Path("/proc/self"), root: Path = Path("/")) -> Limit:
    """The memory limit of this process's cgroup. ``proc_self`` and ``root`` (what the
    mount points are relative to) let tests point it at a fake tree."""
    try:
        found = _memory_cgroup(proc_self, root)
    except OSError as error:
        return Limit(None, problem=f"cannot read the process's cgroups: {error}")
    except ValueError as error:
        return Limit(None, problem=str(error))
    if found is None:
        return Limit(None)
    source, point, directory = found
    return _read_limit(point, directory, V1_FILE if source == V1 else V2_FILE, source)


def memory_cgroup(
    proc_self: Path = Path("/proc/self"), root: Path = Path("/")
) -> tuple[str, Path] | None:
    """``(cgroup v1 or v2, directory)`` of this process's memory cgroup, or None when
    there is none or it cannot be told (tests and benchmarks make child cgroups in it)."""
    try:
        found = _memory_cgroup(proc_self, root)
    except (OSError, ValueError):
        return None
    return None if found is None else (found[0], found[2])


def _memory_cgroup(proc_self: Path, root: Path) -> tuple[str, Path, Path] | None:
    """(source, mount point, the cgroup's directory) of the memory controller."""
    memberships = _memberships(proc_self / "cgroup")
    mounts = _cgroup_mounts(proc_self / "mountinfo")
    v1_path = next(
        (path for controllers, path in memberships if "memory" in controllers.split(",")), None
    )
    v1_mount = next((m for m in mounts if m.kind == "cgroup" and "memory" in m.options), None)
    if v1_path is not None and v1_mount is not None:
        return V1, root / v1_mount.point.lstrip("/"), _cgroup_dir(v1_mount, v1_path, root)
    v2_path = next((path for controllers, path in memberships if controllers == ""), None)
    v2_mount = next((m for m in mounts if m.kind == "cgroup2"), None)
    if v2_path is not None and v2_mount is not None:
        return V2, root / v2_mount.point.lstrip("/"), _cgroup_dir(v2_mount, v2_path, root)
    return None


@dataclass(frozen=True)
class _Mount:
    root: str  # the hierarchy's path shown at the mount point
    point: str
    kind: str  # cgroup or cgroup2
    options: frozenset[str]


def _memberships(path: Path) -> list[tuple[str, str]]:
    """``(controllers, path)`` per line of /proc/self/cgroup (``hierarchy:controllers:path``;
    v2's controllers are empty)."""
    found = []
    for line in path.read_text().splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            if line.strip():
                raise ValueError(f"{path}: unexpected line {line[:60]!r}")
            continue
        _hierarchy, controllers, cgroup = parts
        found.append((controllers, cgroup))
    return found


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes a space as ``\\040`` (and tab, newline, backslash alike)."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _cgroup_mounts(path: Path) -> list[_Mount]:
    """The cgroup and cgroup2 mounts of /proc/self/mountinfo (``id parent dev root point
    options [optional...] - type source superoptions``)."""
    mounts = []
    for line in path.read_text().splitlines():
        before, separator, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not separator or len(fields) < 5 or not tail:
            continue
        kind = tail[0]
        if kind not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(tail[2].split(",")) if len(tail) > 2 else frozenset()
        mounts.append(_Mount(_unescape(fields[3]), _unescape(fields[4]), kind, options))
    return mounts


def _cgroup_dir(mount: _Mount, cgroup: str, root: Path) -> Path:
    """The directory of ``cgroup`` under the mount; the mount point itself when that
    does not exist (a cgroup namespace: the container's cgroup is what is mounted)."""
    point = root / mount.point.lstrip("/")
    relative = cgroup
    if mount.root != "/" and (cgroup == mount.root or cgroup.startswith(mount.root + "/")):
        relative = cgroup[len(mount.root) :]
    candidate = point / relative.lstrip("/")
    inside = relative.strip("/") and ".." not in relative.split("/")
    return candidate if inside and candidate.is_dir() else point


def _read_limit(point: Path, directory: Path, name: str, source: str) -> Limit:
    """The smallest limit in ``name`` from the cgroup's directory up to the mount point."""
    smallest: tuple[int, Path] | None = None
    while True:
        file = directory / name
        try:
            text = file.read_text().strip()
        except FileNotFoundError:
            text = None  # v2's root cgroup has no memory.max; a missing controller neither
        except OSError as error:
            return Limit(None, source, str(file), f"cannot read {file}: {error}")
        if text is not None:
            value = _parse(text, source)
            if value is _GARBAGE:
                return Limit(
                    None,
                    source,
                    str(file),
                    f"{file} holds {text[:40]!r}, not a number of bytes; no limit assumed",
                )
            if isinstance(value, int) and (smallest is None or value < smallest[0]):
                smallest = (value, file)
        if directory == point or point not in directory.parents:
            break
        directory = directory.parent
    if smallest is None:
        return Limit(None, source)
    return Limit(smallest[0], source, str(smallest[1]))


_GARBAGE = object()


def _parse(text: str, source: str) -> int | None | object:
    """Bytes, None for "no limit", or ``_GARBAGE``."""
    if source == V2 and text == "max":
        return None
    if not text.isdigit():
        return _GARBAGE
    value = int(text)
    if source == V1 and value >= V1_UNLIMITED:
        return None
    return value
