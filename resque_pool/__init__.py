"""Resque-compatible background jobs for Django, with a pre-forking pool manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .errors import DontPerform
    from .jobs import enqueue, job

__all__ = ["DontPerform", "enqueue", "job", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that importing the package (settings, apps.py) never needs Django configured.
    if name in ("job", "enqueue"):
        from . import jobs

        return getattr(jobs, name)
    if name == "DontPerform":
        from .errors import DontPerform

        return DontPerform
    raise AttributeError(name)
