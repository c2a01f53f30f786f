"""Process titles in Resque's format, so ``ps`` (and Ruby's pruning) recognise workers.

Ruby's ``prune_dead_workers`` keeps a same-host worker only if ``ps`` shows it as
``resque-<version>: ...``; a Python worker without this title would be pruned by Ruby.
"""

from __future__ import annotations

import os

import setproctitle

from resque_pool.resque.jobs import Job, registry
from resque_pool.version import __version__


def format_procline(text: str) -> str:
    """``"{RESQUE_PROCLINE_PREFIX}resque-<version>: <text>"`` (worker.rb ``procline``)."""
    return f"{os.environ.get('RESQUE_PROCLINE_PREFIX', '')}resque-{__version__}: {text}"


def set_procline(text: str) -> str:
    title = format_procline(text)
    setproctitle.setproctitle(title)
    return title


def display_class(job: Job) -> str:
    """The class a procline shows; ``No Name`` when this process cannot run it (Ruby)."""
    name = job.class_name
    return name if name is not None and name in registry else "No Name"
