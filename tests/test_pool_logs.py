"""resque_pool.logs: the default handler and LogOnce, used by the manager, kill-others and
the worker for errors that repeat every loop."""

from __future__ import annotations

import logging

from resque_pool.logs import LOG_FORMAT, LogOnce, configure_logging

logger = logging.getLogger("resque_pool.tests.logs")


def messages(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == logger.name]


def test_an_error_is_logged_once_until_it_changes_and_once_when_it_clears(caplog):
    caplog.set_level(logging.INFO, logger="resque_pool")
    once = LogOnce(logger)
    assert not once.active
    assert once.error("down", "Redis is down: %s", "refused")
    assert not once.error("down", "Redis is down: %s", "refused")
    assert once.active
    assert once.error("other", "Redis is down: %s", "timeout")
    assert once.clear("Redis answers again")
    assert not once.clear("Redis answers again")
    assert not once.active
    assert once.error("down", "Redis is down: %s", "refused")  # a new outage is logged
    assert messages(caplog) == [
        ("ERROR", "Redis is down: refused"),
        ("ERROR", "Redis is down: timeout"),
        ("INFO", "Redis answers again"),
        ("ERROR", "Redis is down: refused"),
    ]


def test_clear_without_a_message_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="resque_pool")
    once = LogOnce(logger, level=logging.WARNING)
    once.error("x", "it failed")
    assert once.clear()
    assert messages(caplog) == [("WARNING", "it failed")]


def test_configure_logging_adds_one_handler_only_when_none_is_configured():
    package = logging.getLogger("resque_pool")
    saved = package.handlers[:], package.level, package.propagate
    try:
        package.handlers.clear()
        package.setLevel(logging.NOTSET)
        package.propagate = False  # so that pytest's root handlers do not count
        configure_logging()
        configure_logging()
        assert len(package.handlers) == 1
        assert package.handlers[0].formatter._fmt == LOG_FORMAT
        assert package.level == logging.INFO
    finally:
        package.handlers[:], package.propagate = saved[0], saved[2]
        package.setLevel(saved[1])
