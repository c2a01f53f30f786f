"""The tasks this process knows: only these ever run from a payload.

The backend records every task when the framework validates it (at creation, with
``@task``, and at each ``using()``); a payload naming any other path fails as an unknown
job does. Nothing is ever imported from a payload string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resque_pool.tasks.compat import Task


_known: dict[str, Task] = {}


def remember(task: Task) -> None:
    """Record ``task`` under its module path; ``using()`` copies share the function and
    keep the first record (the decorator's defaults)."""
    existing = _known.get(task.module_path)
    if existing is None or existing.func is not task.func:
        _known[task.module_path] = task


def get(module_path: str) -> Task | None:
    return _known.get(module_path)


def names() -> list[str]:
    return sorted(_known)
