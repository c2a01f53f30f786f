"""Resque-compatible background jobs for Django, with a pre-forking pool manager.

The public API, importable from here (``from resque_pool import job, enqueue``; the list
with links is ``docs/api.md``)::

    job, enqueue                    define and enqueue jobs (resque_pool.resque.producer)
    DontPerform, TermException      exceptions a job raises or catches (resque_pool.errors)
    Worker                          one worker, as ``manage.py resque_work`` runs it
    failures                        the failed list (resque_pool.resque.failures)
    Throttled                       a wrapper for custom count loaders (resque_pool.pool.loaders)
    hooks                           worker-level hooks (resque_pool.hooks)

The package tree: ``resque/`` is the Redis data layout shared with Ruby's Resque,
``worker/`` the worker process, ``pool/`` the pool manager, ``dashboard/`` the admin's
Resque pages, ``unix/`` process plumbing the worker and the manager share.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from resque_pool.version import __version__

if TYPE_CHECKING:
    from .errors import DontPerform, TermException
    from .pool.loaders import Throttled
    from .resque import failures
    from .resque.producer import enqueue, job
    from .worker import Worker

# name -> (module, attribute or None for the module itself). Lazy, so that importing the
# package (from settings, apps.py) never touches Django's app registry too early.
_PUBLIC: dict[str, tuple[str, str | None]] = {
    "job": ("resque_pool.resque.producer", "job"),
    "enqueue": ("resque_pool.resque.producer", "enqueue"),
    "DontPerform": ("resque_pool.errors", "DontPerform"),
    "TermException": ("resque_pool.errors", "TermException"),
    "Worker": ("resque_pool.worker.loop", "Worker"),
    "failures": ("resque_pool.resque.failures", None),
    "failure": ("resque_pool.resque.failures", None),  # the name docs used before 0.2
    "Throttled": ("resque_pool.pool.loaders", "Throttled"),
    "hooks": ("resque_pool.hooks", None),
}

__all__ = [
    "DontPerform",
    "TermException",
    "Throttled",
    "Worker",
    "__version__",
    "enqueue",
    "failures",
    "hooks",
    "job",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'resque_pool' has no attribute {name!r}")
    module_name, attribute = _PUBLIC[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
