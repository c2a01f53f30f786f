"""A memory cgroup of a test's (or a benchmark's) own, below this process's memory cgroup:
make it, give it a limit, start a command inside it, read its OOM kills, remove it.

Made below our own cgroup (``resque_pool.capacity.cgroup.memory_cgroup``), never at the
hierarchy's root, so whatever limits this process already has still apply. Needs root (or
a delegated cgroup); ``make`` returns the reason as a string when it cannot, for a skip.
No pytest here: bench/memory_budget.py uses it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from resque_pool.capacity import cgroup


@dataclass
class ChildCgroup:
    version: str  # cgroup.V1 or cgroup.V2
    path: Path

    @property
    def limit_file(self) -> Path:
        return self.path / (cgroup.V1_FILE if self.version == cgroup.V1 else cgroup.V2_FILE)

    def set_limit(self, limit_bytes: int) -> None:
        self.limit_file.write_text(str(limit_bytes))

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` started inside the cgroup: the shell moves itself in, then execs it
        (so the command and everything it forks are charged to the cgroup)."""
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["sh", "-c", script, str(self.path), *command]

    def procs(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        return []

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer killed in this cgroup (v1: memory.oom_control's
        ``oom_kill``, kernels >= 4.13; v2: memory.events' ``oom_kill``)."""
        name = "memory.oom_control" if self.version == cgroup.V1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self, timeout: float = 30.0) -> None:
        """SIGKILL everything inside, wait until it is empty, remove it (bounded)."""
        deadline = time.monotonic() + timeout
        while self.procs() and time.monotonic() < deadline:
            for pid in self.procs():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def make(version: str, prefix: str = "resque-pool-test") -> ChildCgroup | str:
    """A new child memory cgroup of ``version`` (cgroup.V1 or cgroup.V2), or why not."""
    if os.geteuid() != 0:
        return "needs root to make a memory cgroup"
    parent = _parent(version)
    if isinstance(parent, str):
        return parent
    path = parent / f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as error:
        return f"cannot make a {version} memory cgroup under {parent}: {error}"
    child = ChildCgroup(version, path)
    if not child.limit_file.exists():
        with contextlib.suppress(OSError):
            path.rmdir()
        return f"{path} has no {child.limit_file.name}: the memory controller is not enabled there"
    return child


def _parent(version: str) -> Path | str:
    own = cgroup.memory_cgroup()
    if own is not None and own[0] == version:
        return own[1]
    if version == cgroup.V1:
        return "no cgroup v1 memory controller on this machine"
    # A v2 hierarchy beside the v1 memory controller (hybrid) has no memory controller;
    # a pure v2 machine would have been found above.
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.startswith("cgroup2 "):
            point = Path(before.split()[4])
            controllers = (point / "cgroup.controllers").read_text().split()
            if "memory" not in controllers:
                return (
                    f"no cgroup v2 memory controller here ({point}/cgroup.controllers: "
                    f"{' '.join(controllers) or 'none'}; memory is on cgroup v1)"
                )
            return point
    return "no cgroup v2 hierarchy mounted"
