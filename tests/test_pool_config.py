"""Config sources of the pool manager: resque-pool's YAML semantics, interpolation,
validation, the file loader's caching, Throttled, the database loader and backoff."""

from __future__ import annotations

import logging

import pytest

from resque_pool.models import WorkerCount
from resque_pool.pool.backoff import Backoff
from resque_pool.pool.config import (
    ConfigError,
    FileLoader,
    interpolate,
    load_file,
    merge_environment,
    parse_yaml,
    validate_counts,
)
from resque_pool.pool.loaders import DatabaseLoader, Throttled, choose_source
from resque_pool.pool.manager import Manager, Options

# -- merging (resque-pool's FileOrHashLoader#apply_environment) -----------------------------

OBSERVED = {"foo": 1, "bar": 2, "production": {"foo": 5, "a,b": 3}, "staging": {"baz": 1}}


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ("production", {"foo": 5, "bar": 2, "a,b": 3}),
        ("staging", {"foo": 1, "bar": 2, "baz": 1}),
        (None, {"foo": 1, "bar": 2}),
        ("development", {"foo": 1, "bar": 2}),  # no section: root only
    ],
)
def test_observed_merge_example(environment, expected):
    merged = merge_environment(OBSERVED, environment, "example")
    assert merged == expected
    # configuration order: root first, then the section's new keys
    assert list(merged) == list(expected)


def test_hash_spec_cases():
    config = {
        "foo": 8,
        "test": {"bar": 10, "foo,bar": 12},
        "development": {"baz": 14, "foo,bar": 16},
    }
    assert merge_environment(config, "test", "h") == {"foo": 8, "bar": 10, "foo,bar": 12}
    assert merge_environment(config, "development", "h") == {"foo": 8, "foo,bar": 16, "baz": 14}
    assert merge_environment(config, None, "h") == {"foo": 8}
    # the caller's mapping is never mutated (resque-pool's shallow-copy surprise)
    assert config["test"] == {"bar": 10, "foo,bar": 12}


def test_plain_hash_keeps_every_list():
    config = {"foo": 1, "bar": 2, "foo,bar": 3, "bar,foo": 4}
    assert merge_environment(config, "development", "h") == config


SPEC_FILE = """\
foo: 1

production:
  "foo,bar": 10

development:
  "foo,bar": 4
  "baz": 23

test:
  "bar": 5
  "foo,bar": 3
"""


def test_spec_file(tmp_path):
    path = tmp_path / "resque-pool.yml"
    path.write_text(SPEC_FILE)
    assert load_file(str(path), "test") == {"foo": 1, "bar": 5, "foo,bar": 3}
    assert load_file(str(path), "development") == {"foo": 1, "foo,bar": 4, "baz": 23}
    assert load_file(str(path), None) == {"foo": 1}


def test_nested_mappings_are_dropped_and_count_zero_kept():
    config = parse_yaml("foo: 0\nbar: 2\nnested: {deep: 1}\nproduction:\n  other: {x: 1}\n")
    assert merge_environment(config, "production", "f") == {"foo": 0, "bar": 2}


def test_queue_lists_are_normalised_before_merging():
    config = parse_yaml('"foo,bar": 1\nproduction:\n  "foo, bar": 4\n')
    assert merge_environment(config, "production", "f") == {"foo,bar": 4}


def test_yaml_11_booleans_stay_queue_names():
    assert merge_environment(parse_yaml("on: 1\nyes: 2\nno: 3\n"), None, "f") == {
        "on": 1,
        "yes": 2,
        "no": 3,
    }


def test_integer_keys_become_queue_names():
    assert merge_environment(parse_yaml("1: 2\n"), None, "f") == {"1": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo: [\n", "not valid YAML"),
        ("- foo\n- bar\n", "expected a mapping"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ('foo: "2"\n', "must be an integer >= 0, got '2'"),
        ("foo: true\n", "must be an integer >= 0, got True"),
        ("foo: -1\n", "must be an integer >= 0, got -1"),
        ("foo:\n", "must be an integer >= 0, got None"),
        ("foo: 1.5\n", "must be an integer >= 0, got 1.5"),
        ('"foo,,bar": 1\n', "empty queue name"),
        ('"": 1\n', "Give at least one queue name"),
        ('"foo bar": 1\n', "contains whitespace"),
        ('"foo,bar": 1\n"foo, bar": 2\n', "given twice"),
        ("true: 1\n", "is not a queue list"),
    ],
)
def test_invalid_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "pool.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_file(str(path), None)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_file(str(tmp_path / "nope.yml"), None)


def test_validate_counts_for_loader_results():
    assert validate_counts({"a, b": 2, "c": 0}, "loader") == {"a,b": 2, "c": 0}
    for bad in ({"a": True}, {"a": "1"}, {"a": -2}, {" ": 1}, ["a"], None):
        with pytest.raises(ConfigError):
            validate_counts(bad, "loader")


# -- interpolation (in place of ERB) --------------------------------------------------------


def test_interpolation():
    environ = {"COUNT": "3", "EMPTY": "", "QUEUE": "mail"}
    text = "${QUEUE}: ${COUNT}\nx: ${MISSING:-2}\ny: ${EMPTY:-4}\nz: $${LITERAL}\n# ${UNSET}\n"
    assert interpolate(text, environ) == "mail: 3\nx: 2\ny: 4\nz: ${LITERAL}\n# ${UNSET}\n"


def test_interpolation_of_unset_variable_is_an_error():
    with pytest.raises(ConfigError, match=r"pool.yml:2: environment variable NOPE is not set"):
        interpolate("a: 1\nb: ${NOPE}\n", {}, "pool.yml")


def test_interpolated_file(tmp_path, monkeypatch):
    # resque-pool's spec-custom.yml.erb: "foo: <%= 1+1 %>" loads as {"foo" => 2}
    path = tmp_path / "custom.yml"
    path.write_text("foo: ${POOL_TEST_FOO:-2}\nproduction:\n  ${POOL_TEST_Q:-bar}: 1\n")
    monkeypatch.delenv("POOL_TEST_FOO", raising=False)
    assert load_file(str(path), None) == {"foo": 2}
    monkeypatch.setenv("POOL_TEST_FOO", "7")
    monkeypatch.setenv("POOL_TEST_Q", "mail")
    assert load_file(str(path), "production") == {"foo": 7, "mail": 1}


# -- the file loader's caching -------------------------------------------------------------


def test_file_loader_reads_again_only_after_reset(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("orig: 1\n")
    loader = FileLoader(str(path))
    assert loader(None) == {"orig": 1}
    path.write_text("changed: 1\n")
    assert loader(None) == {"orig": 1}  # "should not automatically load the changes"
    loader.reset()
    assert loader(None) == {"changed": 1}  # "should reload the changes on HUP signal"


def test_file_loader_caches_a_failure_until_reset(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("foo: [\n")
    loader = FileLoader(str(path))
    with pytest.raises(ConfigError):
        loader(None)
    path.write_text("foo: 1\n")
    with pytest.raises(ConfigError):  # not re-read every second
        loader(None)
    loader.reset()
    assert loader(None) == {"foo": 1}


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
    settings.RESQUE_POOL_CONFIG_LOADER = "tests.pool_support.ReversingLoader"
    path = str(tmp_path / "pool.yml")
    assert choose_source(path, "web1").description == path
    assert choose_source(path, "web1").strict
    source = choose_source(None, "web1")
    assert source.description == "tests.pool_support.ReversingLoader"
    assert type(source.loader).__name__ == "ReversingLoader"  # a class is instantiated
    settings.RESQUE_POOL_CONFIG_LOADER = None
    assert choose_source(None, "web1").description == "database"
    settings.RESQUE_POOL_CONFIG_LOADER = "tests.pool_support.nothing_here"
    with pytest.raises(ConfigError, match="nothing_here"):
        choose_source(None, "web1")


@pytest.mark.django_db
def test_database_loader_merges_layers(django_assert_num_queries):
    WorkerCount.objects.create(queues="a", count=1)
    WorkerCount.objects.create(queues="b", count=2)
    WorkerCount.objects.create(queues="a", count=3, environment="production")
    WorkerCount.objects.create(queues="b", count=0, pool="web1")
    WorkerCount.objects.create(queues="c", count=5, environment="production", pool="web2")
    loader = DatabaseLoader("web1")
    with django_assert_num_queries(1):  # one small query per period per pool
        assert loader("production") == {"a": 3, "b": 0}
    assert DatabaseLoader("web2")("production") == {"a": 3, "b": 2, "c": 5}
    assert DatabaseLoader("web2")("staging") == {"a": 1, "b": 2}


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

    from resque_pool.pool.loaders import Source

    manager = Manager(Source(loader, "flaky"), Options(environment=None, pool="p", appname="t"))
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


# -- backoff -------------------------------------------------------------------------------


def test_backoff_quick_deaths_double_to_sixteen_seconds():
    backoff = Backoff()
    delays = []
    now = 100.0
    for _ in range(8):
        backoff.died(lifetime=0.1, now=now)
        delays.append(backoff.delay)
        assert backoff.wait(now) == backoff.delay
        now += backoff.delay + 0.1
    assert delays == [0, 1, 2, 4, 8, 16, 16, 16]


def test_backoff_long_life_clears():
    backoff = Backoff()
    backoff.died(0.1, 100)
    backoff.died(0.1, 101)
    assert backoff.delay == 1
    backoff.died(60, 200)  # lived long enough: replaced at once, counter cleared
    assert backoff.delay == 0 and backoff.wait(200) == 0
    backoff.died(0.1, 201)
    assert backoff.delay == 0  # a first quick death again


def test_backoff_grows_once_per_wave_of_deaths():
    """A Redis outage kills every worker of a list at once: one wave, one doubling."""
    backoff = Backoff()
    for _worker in range(5):  # five workers started at 99.9 die at 100
        backoff.died(0.1, 100.0)
    assert (backoff.quick_deaths, backoff.delay) == (1, 0)
    for _worker in range(5):  # their replacements, started at 100.5, die at 101
        backoff.died(0.5, 101.0)
    assert (backoff.quick_deaths, backoff.delay) == (2, 1)
    backoff.died(5.0, 103.0)  # a worker of the first wave, dying late: already counted
    assert (backoff.quick_deaths, backoff.delay) == (2, 1)


def test_backoff_survivor_started_after_last_death_clears():
    backoff = Backoff()
    for now in (100, 101, 103):
        backoff.died(0.1, now)
    assert backoff.delay == 2
    backoff.survived(started=50, now=200)  # an old sibling says nothing
    assert backoff.delay == 2
    backoff.survived(started=105, now=110)  # a new one, too young yet
    assert backoff.delay == 2
    backoff.survived(started=105, now=116)
    assert backoff.delay == 0 and backoff.quick_deaths == 0


# -- the signal queue ----------------------------------------------------------------------


def test_signal_queue_holds_five_and_logs_the_rest(caplog):
    import os
    import signal

    from resque_pool.pool.signals import SignalQueue

    queue = SignalQueue()
    queue.install()
    try:
        for _ in range(7):
            os.kill(os.getpid(), signal.SIGUSR1)
        queue.sleep(0.5)  # returns at once: signals are waiting
        caplog.set_level(logging.WARNING, logger="resque_pool")
        queue.log_dropped()
        assert list(queue.pending) == [signal.SIGUSR1] * 5
        assert caplog.text.count("ignoring SIGUSR1: signal queue is full") == 2
        assert [queue.pop() for _ in range(6)] == [signal.SIGUSR1] * 5 + [None]
    finally:
        queue.uninstall()
        queue.close()


def test_kill_others_logs_a_repeating_redis_error_once(caplog, settings):
    from resque_pool.pool.killer import KillOthers
    from resque_pool.pool.processes import WorkerProcess, WorkerTable
    from resque_pool.resque import connection

    settings.RESQUE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    connection.reset_connections()
    killer = KillOthers("app", "host", 1, enabled=True)
    workers = WorkerTable()
    workers.add(WorkerProcess(12345, "demo", 0.0))
    with caplog.at_level("ERROR", logger="resque_pool.pool"):
        for _ in range(3):
            killer.next_check = 0.0
            killer.tick(workers, {"demo": 1})
    errors = [r for r in caplog.records if "kill-others" in r.getMessage()]
    assert len(errors) == 1 and "will retry" in errors[0].getMessage()
    assert killer.pending  # still waiting to signal the old pools
