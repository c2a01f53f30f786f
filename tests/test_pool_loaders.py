"""Where the counts come from: Throttled (resque-pool's throttled_spec.rb), choosing the
source, the database loader, and the manager keeping the last good counts."""

from __future__ import annotations

import logging
import re

import pytest

from resque_pool.config_error import ConfigError
from resque_pool.models import WorkerCount
from resque_pool.pool.loaders import (
    CallableLoader,
    ConfigLoader,
    DatabaseLoader,
    PoolConfig,
    Source,
    Throttled,
    choose_source,
)
from resque_pool.pool.manager import Manager, Options

# -- Throttled (spec/config_loaders/throttled_spec.rb) -------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    def __init__(self) -> None:
        self.calls: list[str | None] = []
        self.resets = 0

    def __call__(self, environment):
        self.calls.append(environment)
        return {"foo": len(self.calls)}

    def reset(self) -> None:
        self.resets += 1


def test_throttled_default_period():
    clock, loader = FakeClock(), CountingLoader()
    throttled = Throttled(loader, time_source=clock)
    start = clock.now
    assert throttled("env") == {"foo": 1}
    clock.now = start + 6
    assert throttled("env") == {"foo": 1}
    assert len(loader.calls) == 1
    clock.now = start + 12
    assert throttled("env") == {"foo": 2}
    assert len(loader.calls) == 2
    clock.now = start + 13
    assert throttled("env") == {"foo": 2}
    assert len(loader.calls) == 2


def test_throttled_period_60():
    clock, loader = FakeClock(), CountingLoader()
    throttled = Throttled(loader, period=60, time_source=clock)
    start = clock.now
    throttled("env")
    expectations = [(59, 1), (64, 2), (123, 2), (125, 3)]
    for offset, calls in expectations:
        clock.now = start + offset
        throttled("env")
        assert len(loader.calls) == calls, offset


def test_throttled_is_strictly_greater_and_first_call_loads_at_time_zero():
    clock, loader = FakeClock(), CountingLoader()
    clock.now = 0.0
    throttled = Throttled(loader, period=10, time_source=clock)
    throttled(None)
    assert len(loader.calls) == 1
    clock.now = 10.0
    throttled(None)
    assert len(loader.calls) == 1  # exactly the period: still cached
    clock.now = 10.001
    throttled(None)
    assert len(loader.calls) == 2


def test_throttled_reset_forces_reload_and_is_delegated():
    clock, loader = FakeClock(), CountingLoader()
    throttled = Throttled(loader, time_source=clock)
    throttled("env")
    clock.now += 1
    throttled.reset()
    assert loader.resets == 1
    assert throttled("env") == {"foo": 2}


def test_throttled_reset_with_a_plain_function():
    calls = []
    throttled = Throttled(lambda env: calls.append(env) or {"x": 1}, time_source=FakeClock())
    throttled("env")
    throttled.reset()  # no reset on a lambda: must not raise
    throttled("env")
    assert calls == ["env", "env"]


def test_throttled_failure_does_not_update_last_check():
    clock = FakeClock()
    outcomes = [RuntimeError("down"), {"a": 1}]

    def flaky(env):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    throttled = Throttled(flaky, time_source=clock)
    with pytest.raises(RuntimeError):
        throttled("env")
    assert throttled("env") == {"a": 1}  # retried at once, not after the period


def test_throttled_delegates_attributes():
    loader = CountingLoader()
    throttled = Throttled(loader)
    assert throttled.calls is loader.calls


# -- loader selection and the database loader ----------------------------------------------


def test_choose_source_order(settings, tmp_path):
    settings.RESQUE_POOL_CONFIG_LOADER = "tests.support.processes.ReversingLoader"
    path = str(tmp_path / "pool.yml")
    assert choose_source(path, "web1").description == path
    assert choose_source(path, "web1").strict
    source = choose_source(None, "web1")
    assert source.description == "tests.support.processes.ReversingLoader"
    # A class is instantiated; written for resque-pool's interface, it is wrapped.
    assert isinstance(source.loader, CallableLoader)
    assert type(source.loader.loader).__name__ == "ReversingLoader"
    settings.RESQUE_POOL_CONFIG_LOADER = None
    assert choose_source(None, "web1").description == "database"
    settings.RESQUE_POOL_CONFIG_LOADER = "tests.support.processes.nothing_here"
    with pytest.raises(ConfigError, match="nothing_here"):
        choose_source(None, "web1")


@pytest.mark.django_db
def test_database_loader_merges_layers(django_assert_num_queries):
    WorkerCount.objects.create(queues="a", count=1)
    WorkerCount.objects.create(queues="b", count=2)
    WorkerCount.objects.create(queues="a", count=3, environment="production")
    WorkerCount.objects.create(queues="b", count=0, pool="web1")
    WorkerCount.objects.create(queues="c", count=5, environment="production", pool="web2")
    WorkerCount.objects.filter(queues="c").update(max_jobs=7)
    loader = DatabaseLoader("web1")
    with django_assert_num_queries(1):  # one small query per period per pool, limits included
        assert loader.load("production") == PoolConfig({"a": 3, "b": 0}, {})
    assert DatabaseLoader("web2").load("production") == PoolConfig(
        {"a": 3, "b": 2, "c": 5}, {"c": {"max_jobs": 7}}
    )
    assert DatabaseLoader("web2").load("staging").counts == {"a": 1, "b": 2}


class LimitsFrom:
    """A loader whose ``limits()`` returns ``found``."""

    def __init__(self, found) -> None:
        self.found = found

    def __call__(self, environment):
        return {}

    def limits(self, environment):
        return self.found


def limits_of(loader, environment=None):
    wrapped = loader if isinstance(loader, ConfigLoader) else CallableLoader(loader)
    source = Source(wrapped, "mine")
    return source.limits_of(source.load(environment))


def test_a_loaders_limits_are_validated_and_normalised_as_a_files():
    found = {" a , b": {"max_jobs": 5}, "c": {}}
    assert limits_of(LimitsFrom(found)) == {"a,b": {"max_jobs": 5}, "c": {}}
    assert limits_of(Throttled(LimitsFrom(found)))["a,b"] == {"max_jobs": 5}
    assert limits_of(LimitsFrom(None)) == {}
    assert limits_of(lambda environment: {"a": 1}) == {}  # no limits()


@pytest.mark.parametrize(
    ("found", "error"),
    [
        ({"a": {"timeout": 5}}, "mine limits: unknown limit 'timeout' for 'a'"),
        ({"a": {"max_jobs": 0}}, "max_jobs for 'a' must be an integer from 1 to 2147483647"),
        ({"a": {"job_timeout": "300"}}, "job_timeout for 'a' must be an integer"),
        ({"a": {"max_memory_mb": True}}, "max_memory_mb for 'a' must be an integer"),
        ({"a": 5}, "limits for 'a' must be a mapping"),
        (["a"], "mine limits: expected a mapping, got list"),
    ],
)
def test_invalid_limits_from_a_loader_are_a_config_error(found, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        limits_of(LimitsFrom(found))


class Counted(ConfigLoader):
    """A loader written to the contract: counts and limits together, and a cache."""

    def __init__(self) -> None:
        self.loads = 0
        self.cached: PoolConfig | None = None

    def load(self, environment):
        if self.cached is None:
            self.loads += 1
            self.cached = PoolConfig({" high, low": 2}, {"high,low": {"job_timeout": 30}})
        return self.cached

    def reset(self):
        self.cached = None


def test_a_contract_loader_gives_counts_and_limits_in_one_load():
    loader = Counted()
    source = Source(loader, "counted")
    config = source.load(None)
    assert source.counts_of(config) == {"high,low": 2}  # normalised
    assert source.limits_of(config) == {"high,low": {"job_timeout": 30}}
    assert loader.loads == 1
    throttled = Throttled(loader, period=10, time_source=lambda: 0.0)
    assert throttled(None) == {" high, low": 2}  # calling it gives the counts, as Ruby's
    throttled.reset()  # passed on: the wrapped loader forgets its cache
    assert throttled.load(None) is not config and loader.loads == 2


def test_a_load_that_is_not_a_pool_config_is_a_one_line_error():
    class Sloppy(ConfigLoader):
        def load(self, environment):
            return {"a": 1}

    with pytest.raises(ConfigError, match="sloppy: load\\(\\) must return a PoolConfig, got dict"):
        Source(Sloppy(), "sloppy").load(None)


def test_the_base_contract_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="must implement load"):
        ConfigLoader().load(None)


# -- the manager's loading: last good counts stay, errors logged once per change ------------


def test_manager_keeps_last_good_counts_and_logs_each_error_once(caplog):
    outcomes: list = [
        {"a": 1},
        RuntimeError("db down"),
        RuntimeError("db down"),
        {"a": True},
        {"a": True},
        {"a": 2},
    ]

    def loader(env):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    options = Options(environment=None, pool="p", appname="t")
    manager = Manager(Source(CallableLoader(loader), "flaky"), options)
    caplog.set_level(logging.INFO, logger="resque_pool")
    assert manager.load_counts()
    assert manager.counts == {"a": 1}
    assert not manager.load_counts()
    assert not manager.load_counts()
    assert not manager.load_counts()
    assert not manager.load_counts()
    assert manager.counts == {"a": 1}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # one per distinct error, not one per call
    assert "RuntimeError: db down" in errors[0]
    assert "must be an integer" in errors[1]
    assert manager.load_counts()
    assert manager.counts == {"a": 2}
    assert any("load again" in r.getMessage() for r in caplog.records)
    manager.signals.close()
