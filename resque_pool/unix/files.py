"""Small files that processes find each other through (pidfiles, the memory directory for
progress and health files), and whether a pid is alive.

Only the standard library's lightest modules: ``python -m resque_pool.health``, which a
probe runs every few seconds, imports this and pays for every import at each call.
"""

from __future__ import annotations

import errno
import os
import stat

# A memory filesystem, as gunicorn advises for its workers' heartbeat files: files touched
# every second or so (progress and health files) then cost no metadata write on a
# journaling disk filesystem (/tmp often is one).
_MEMORY_DIR = "/dev/shm"


class UnusablePidfile(Exception):
    """A path that cannot hold a pidfile (a directory, a device, no permission); the
    message says why."""


def memory_dir() -> str | None:
    """``/dev/shm`` when this user may create files there, else None (the caller then uses
    the temporary directory)."""
    if os.path.isdir(_MEMORY_DIR) and os.access(_MEMORY_DIR, os.W_OK | os.X_OK):
        return _MEMORY_DIR
    return None


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (owned by anyone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_pid(path: str) -> int | None:
    """The pid in ``path``; None when there is no file, 0 when it holds garbage (stale, like
    resque-pool's pid <= 0). A path that cannot hold a pidfile (a directory, a component
    that is a regular file, no permission) raises ``UnusablePidfile``: it is not "stale"."""
    try:
        # O_NOFOLLOW: a symlink there is stale (the rename replaces the link, not its
        # target); O_NONBLOCK: a FIFO must not hang us; read at most a pid's worth.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return 0
        raise UnusablePidfile(error.strerror or str(error)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnusablePidfile("not a regular file")
        return int(os.read(fd, 64).strip() or 0)
    except (OSError, ValueError):
        return 0
    finally:
        os.close(fd)
