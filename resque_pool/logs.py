"""Logging for our long-running processes: the default format and handler, and ``LogOnce``.

The manager, the worker and their helpers repeat an operation every second or so (load
the counts, publish the state, reserve a job); when it keeps failing the same way, one
line says so and another says when it works again, instead of a line a second.
"""

from __future__ import annotations

import logging
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging() -> None:
    """A handler for our logger when the project configured none (time, level, pid)."""
    package = logging.getLogger("resque_pool")
    if package.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)


class LogOnce:
    """Log an error once until it changes, and (optionally) once when it clears.

    ``key`` says what counts as "the same error": usually the error's text, or a constant
    to log once for as long as a condition lasts, whatever its details.
    """

    def __init__(self, logger: logging.Logger, level: int = logging.ERROR) -> None:
        self.logger = logger
        self.level = level
        self.key: str | None = None

    @property
    def active(self) -> bool:
        """True while an error is reported and not cleared."""
        return self.key is not None

    def error(self, key: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless ``key`` is the one logged last; True if logged."""
        if key == self.key:
            return False
        self.key = key
        self.logger.log(self.level, message, *args)
        return True

    def clear(self, message: str | None = None, *args: Any) -> bool:
        """The error is gone: forget it, and log ``message`` at INFO if one was reported.
        True if there was one."""
        if self.key is None:
            return False
        self.key = None
        if message is not None:
            self.logger.info(message, *args)
        return True
