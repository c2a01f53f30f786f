"""Where an autoscaled list's bounds come from: a ``WorkerCount`` row's ``max_count``, a
file's ``autoscale:`` mapping (Ruby's resque-pool drops it as it drops ``limits:``) and a
custom loader's ``maximums()``; what is refused, with one line; and a manager that keeps
its last good maximums while its counts move on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from resque_pool.capacity.autoscale import Reading
from resque_pool.config_error import ConfigError
from resque_pool.models import WorkerCount
from resque_pool.pool.config import load, merge_maximums
from resque_pool.pool.loaders import CallableLoader, FileLoader, PoolConfig, Source
from resque_pool.pool.manager import Manager, Options
from resque_pool.yaml_file import parse_yaml
from tests.support.pool_fixtures import write

FILE = """\
"high, low": 1
mail: 2
autoscale:
  "high,low": 8
production:
  "high,low": 2
  autoscale:
    "high,low": 16
"""


def test_a_file_gives_maximums_merged_per_environment(tmp_path):
    path = write(tmp_path / "pool.yml", FILE)
    assert load(str(path), None) == PoolConfig({"high,low": 1, "mail": 2}, {}, {"high,low": 8})
    assert load(str(path), "production") == PoolConfig(
        {"high,low": 2, "mail": 2}, {}, {"high,low": 16}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo: 4\nautoscale:\n  foo: 2\n", "maximum for 'foo' (2) is below its count (4)"),
        ("foo: 1\nautoscale:\n  foo: 0\n", "maximum for 'foo' must be an integer from 1 to"),
        ("foo: 1\nautoscale:\n  foo: lots\n", "maximum for 'foo' must be an integer"),
        ("foo: 1\nautoscale:\n  foo: true\n", "maximum for 'foo' must be an integer"),
        ("foo: 1\nautoscale:\n  'a,,b': 3\n", "[autoscale]: queue list 'a,,b'"),
        ("foo: 1\nautoscale:\n  foo: 300\n", "up to 300 workers when autoscaled, more than"),
    ],
)
def test_bad_maximums_in_a_file_are_one_line_errors(tmp_path, text, message):
    path = write(tmp_path / "pool.yml", text)
    with pytest.raises(ConfigError) as error:
        load(str(path), None)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_an_environment_named_autoscale_is_refused_when_the_file_autoscales():
    config = parse_yaml("foo: 1\nautoscale:\n  foo: 3\n")
    with pytest.raises(ConfigError, match="environment cannot be named 'autoscale'"):
        merge_maximums(config, "autoscale", "f")


def test_a_maximum_for_a_list_without_a_count_is_allowed_and_unused(tmp_path):
    path = write(tmp_path / "pool.yml", "foo: 1\nautoscale:\n  bar: 3\n")
    assert load(str(path), None).maximums == {"bar": 3}


@pytest.mark.django_db
def test_rows_give_bounds_and_a_more_specific_row_overrides_both():
    WorkerCount.objects.create(queues="a", count=1, max_count=8)
    WorkerCount.objects.create(queues="b", count=2, max_count=4)
    WorkerCount.objects.create(queues="b", count=3, pool="web1")  # fixed on web1
    WorkerCount.objects.create(queues="a", count=2, environment="prod", max_count=6)
    counts, _limits, maximums = WorkerCount.objects.config_for("prod", "web1")
    assert (counts, maximums) == ({"a": 2, "b": 3}, {"a": 6})
    assert WorkerCount.objects.config_for(None, None)[2] == {"a": 8, "b": 4}
    assert str(WorkerCount.objects.get(queues="a", environment="")) == "a: 1..8"


@pytest.mark.parametrize(
    ("count", "max_count", "message"),
    [
        (4, 2, "The maximum must be at least the count (4)."),
        (1, 0, "Leave it blank for a fixed count, or give 1 or more."),
        (1, 100_000, "A pool runs at most"),
    ],
)
def test_a_row_with_bad_bounds_is_refused_with_a_message(count, max_count, message):
    row = WorkerCount(queues="a", count=count, max_count=max_count)
    with pytest.raises(ValidationError) as error:
        row.clean()
    assert message in error.value.message_dict["max_count"][0]


def test_a_custom_loader_gives_maximums_beside_its_counts():
    def loader(environment):
        return {"high": 1}

    loader.maximums = lambda environment: {"high": 5}
    assert CallableLoader(loader).load(None) == PoolConfig({"high": 1}, {}, {"high": 5})


def test_the_manager_keeps_its_last_good_maximums_while_new_counts_apply(tmp_path):
    path = write(tmp_path / "pool.yml", "foo: 1\nautoscale:\n  foo: 4\n")
    loader = FileLoader(str(path))
    manager = Manager(Source(loader, str(path)), Options(environment=None, pool="p", appname="t"))
    try:
        assert manager.load_counts()
        assert manager.maximums == {"foo": 4}
        assert manager.autoscale.state()["foo"]["max"] == 4

        # A custom loader whose maximum falls below its new count: the counts apply, the
        # maximums stay (and a maximum under its floor is the floor: foo runs a fixed 6).
        def counts(environment):
            return {"foo": 6}

        counts.maximums = lambda environment: {"foo": 5}
        manager.source = Source(counts, "tests.loader")
        assert manager.load_counts()
        assert (manager.counts, manager.maximums) == ({"foo": 6}, {"foo": 4})
        assert manager.desired() == {"foo": 6}
    finally:
        manager.signals.close()


def test_the_test_option_lists_the_maximums_and_a_bad_one_exits_2(run_manage, tmp_path):
    path = write(tmp_path / "pool.yml", '"high,low": 1\nmail: 2\nautoscale:\n  "high,low": 3\n')
    result = run_manage("resque_pool", "--test", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Workers defined in {path}",
        "1: high,low",
        "2: mail",
        "3: mail",
        "Autoscaled up to",
        "high,low: 3",
    ]
    write(path, "a: 4\nautoscale:\n  a: 2\n")
    result = run_manage("resque_pool", "--test", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {path}: maximum for 'a' (2) is below its count (4)"
    ]


def test_readiness_asks_for_the_floors_not_the_autoscaled_targets(tmp_path):
    path = write(tmp_path / "pool.yml", "demo: 0\nmail: 0\nautoscale:\n  demo: 3\n")
    options = Options(environment=None, pool="p", appname="ready-floors")
    manager = Manager(Source(FileLoader(str(path)), str(path)), options)
    try:
        assert manager.load_counts()
        manager.autoscale.autoscaler.observe("demo", Reading(backlog=5, waited=0, busy=0))
        assert manager.desired() == {"demo": 3, "mail": 0}  # what it forks towards
        manager.beat()
        # No worker yet, and ready: the floors (0) run; the target is extra capacity.
        assert manager._health_state["complete"] is True
    finally:
        manager.health.remove()
        manager.signals.close()
