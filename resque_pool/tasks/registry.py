"""The tasks this process knows: only these ever run from a payload.

The backend records every task when the framework validates it (at creation, with
``@task``, and at each ``using()``); a payload naming any other path fails as an unknown
job does. Nothing is ever imported from a payload string.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules, import_string

if TYPE_CHECKING:
    from resque_pool.tasks.compat import Task

logger = logging.getLogger(__name__)

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


def uses_resque_backend() -> bool:
    """Whether any ``TASKS`` alias is a ``ResqueBackend`` (or a subclass)."""
    configured: Any = getattr(settings, "TASKS", None)
    if not isinstance(configured, dict):
        return False
    for params in configured.values():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        if not isinstance(path, str):
            continue
        if path == "resque_pool.tasks.ResqueBackend":
            return True
        try:
            backend = import_string(path)
        except ImportError:
            continue  # the framework reports it when the backend is first used
        from resque_pool.tasks.backend import ResqueBackend

        if inspect.isclass(backend) and issubclass(backend, ResqueBackend):
            return True
    return False


def autodiscover() -> None:
    """Import every installed app's ``tasks`` module, as ``jobs`` modules are, when a
    ``ResqueBackend`` is configured (apps that use another task system keep theirs
    unimported)."""
    if uses_resque_backend():
        import resque_pool.tasks.wrapper  # noqa: F401  (registers the wrapper job)

        autodiscover_modules("tasks")
