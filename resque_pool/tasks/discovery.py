"""Finding the project's tasks at start-up (``apps.py``): whether ``TASKS`` uses a
``ResqueBackend``, and if so every installed app's ``tasks`` module, as ``jobs`` modules
are. It stands above the backend and the wrapper, which it loads only when the backend is
configured; ``known_tasks.py`` below only records the tasks.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules, import_string


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
        # Imported only now: the Tasks framework is an optional extra, and a project whose
        # TASKS names another backend must be able to start without it.
        from resque_pool.tasks.backend import ResqueBackend

        if inspect.isclass(backend) and issubclass(backend, ResqueBackend):
            return True
    return False


def autodiscover() -> None:
    """Import every installed app's ``tasks`` module, as ``jobs`` modules are, when a
    ``ResqueBackend`` is configured (apps that use another task system keep theirs
    unimported)."""
    if uses_resque_backend():
        # Only now, for the same reason: the wrapper job needs the framework.
        import resque_pool.tasks.wrapper  # noqa: F401  (registers the wrapper job)

        autodiscover_modules("tasks")
