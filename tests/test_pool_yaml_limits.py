"""Limits per queue list in a resque-pool YAML file: the reserved ``limits:`` mapping at the
root and inside an environment section, its validation, the file loader's
``limits(environment)``, ``--test`` and a pool that applies them."""

from __future__ import annotations

import pytest

import tests.support.limits_jobs  # noqa: F401  (registers the jobs enqueued here)
from resque_pool import enqueue
from resque_pool.config_error import ConfigError
from resque_pool.pool.config import load, merge_environment, merge_limits
from resque_pool.pool.loaders import FileLoader, PoolConfig, Source
from resque_pool.pool.manager import Manager, Options
from resque_pool.yaml_file import parse_yaml
from tests.support.pool_fixtures import first_failure, write

TIMEOUT = 60.0

FILE = """\
foo: 1
"high, low": 2
limits:
  "high, low": {job_timeout: 300, max_jobs: 1000}
  foo: {max_memory_mb: 512}
  mail: {job_timeout: 20}
production:
  foo: 4
  mail: 1
  limits:
    "high,low": {max_jobs: 50}
    reports: {job_timeout: 3600}
"""


@pytest.mark.parametrize(
    ("environment", "counts", "limits"),
    [
        (
            "production",
            {"foo": 4, "high,low": 2, "mail": 1},
            {
                "high,low": {"job_timeout": 300, "max_jobs": 50},
                "foo": {"max_memory_mb": 512},
                "mail": {"job_timeout": 20},
                "reports": {"job_timeout": 3600},
            },
        ),
        (
            None,
            {"foo": 1, "high,low": 2},
            {
                "high,low": {"job_timeout": 300, "max_jobs": 1000},
                "foo": {"max_memory_mb": 512},
                "mail": {"job_timeout": 20},
            },
        ),
    ],
)
def test_limits_merge_per_limit_and_counts_are_unchanged(tmp_path, environment, counts, limits):
    path = write(tmp_path / "pool.yml", FILE)
    assert load(str(path), environment) == PoolConfig(counts, limits)
    # The counts are exactly resque-pool's merge: the limits: mappings are dropped as hashes.
    config = parse_yaml(FILE)
    ruby_like = {k: v for k, v in config.items() if not isinstance(v, dict)}
    if environment:
        ruby_like.update(config[environment])
    ruby_like = {k: v for k, v in ruby_like.items() if not isinstance(v, dict)}
    assert {k.replace(" ", ""): v for k, v in ruby_like.items()} == counts


def test_a_file_without_limits_has_none():
    assert merge_limits(parse_yaml("foo: 1\nproduction: {foo: 2}\n"), "production", "f") == {}


def test_a_scalar_limits_key_is_still_a_queue_named_limits():
    config = parse_yaml("limits: 2\n")
    assert merge_environment(config, None, "f") == {"limits": 2}
    assert merge_limits(config, None, "f") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "limits:\n  foo: {timeout: 5}\n",
            "f [limits]: unknown limit 'timeout' for 'foo' "
            "(known: job_timeout, max_jobs, max_memory_mb)",
        ),
        (
            "limits:\n  foo: {job_timeout: 0}\n",
            "f [limits]: job_timeout for 'foo' must be an integer from 1 to 2147483647, got 0",
        ),
        (
            "limits:\n  foo: {max_jobs: -3}\n",
            "f [limits]: max_jobs for 'foo' must be an integer from 1 to 2147483647, got -3",
        ),
        ("limits:\n  foo: {max_memory_mb: true}\n", "must be an integer from 1 to 2147483647"),
        ("limits:\n  foo: {max_jobs: 1.5}\n", "got 1.5"),
        ("limits:\n  foo: {max_jobs: '5'}\n", "got '5'"),
        ("limits:\n  foo: {max_jobs: null}\n", "got None"),
        ("limits:\n  foo: {job_timeout: 2147483648}\n", "got 2147483648"),
        (
            "limits:\n  foo: 5\n",
            "f [limits]: limits for 'foo' must be a mapping of job_timeout, max_jobs, "
            "max_memory_mb, got 5",
        ),
        ("limits:\n  'a,b': {}\n  'a, b': {}\n", "f [limits]: queue list 'a,b' is given twice"),
        ("limits:\n  ' , ': {max_jobs: 1}\n", "f [limits]: queue list"),
        (
            "production:\n  limits:\n    foo: {max_jobs: 0}\n",
            "f [production.limits]: max_jobs for 'foo' must be an integer",
        ),
    ],
)
def test_invalid_limits_are_one_line_errors(text, message):
    with pytest.raises(ConfigError) as error:
        merge_limits(parse_yaml(text), "production", "f")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_other_environments_limits_are_not_read():
    # As for counts: only the chosen section is validated.
    config = parse_yaml("foo: 1\nstaging:\n  limits:\n    foo: {max_jobs: 0}\n")
    assert merge_limits(config, "production", "f") == {}


def test_an_environment_named_limits_is_refused_when_the_file_has_limits():
    config = parse_yaml("foo: 1\nlimits:\n  foo: {max_jobs: 5}\n")
    with pytest.raises(ConfigError, match="environment cannot be named 'limits'"):
        merge_limits(config, "limits", "f")


def test_the_file_loader_gives_limits_and_the_manager_keeps_the_last_good_ones(tmp_path):
    path = write(tmp_path / "pool.yml", "foo: 1\nlimits:\n  foo: {job_timeout: 5}\n")
    loader = FileLoader(str(path))
    assert loader.load(None) == PoolConfig({"foo": 1}, {"foo": {"job_timeout": 5}})
    write(path, "foo: 1\nlimits:\n  foo: {job_timeout: 9}\n")
    assert loader.load(None).limits == {"foo": {"job_timeout": 5}}  # cached until HUP
    loader.reset()
    manager = Manager(Source(loader, str(path)), Options(environment=None, pool="p", appname="t"))
    try:
        assert manager.load_counts()
        assert manager.limits == {"foo": {"job_timeout": 9}}
        # A broken file on HUP: the load raises, and the manager keeps its last good
        # counts and limits together.
        write(path, "foo: 2\nlimits:\n  foo: {job_timeout: nope}\n")
        loader.reset()
        with pytest.raises(ConfigError, match="job_timeout for 'foo'"):
            loader.load(None)
        assert not manager.load_counts()
        assert (manager.counts, manager.limits) == ({"foo": 1}, {"foo": {"job_timeout": 9}})
    finally:
        manager.signals.close()


def test_invalid_limits_stop_the_start_with_one_line(run_manage, tmp_path):
    path = write(tmp_path / "pool.yml", "foo: 1\nlimits:\n  foo: {max_jobs: 0}\n")
    result = run_manage("resque_pool", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {path} [limits]: max_jobs for 'foo' must be an integer from 1 to "
        "2147483647, got 0"
    ]


def test_test_option_lists_the_limits_of_the_lists_it_runs(run_manage, tmp_path):
    path = write(tmp_path / "pool.yml", FILE)
    result = run_manage("resque_pool", "--test", "-c", str(path), "-E", "production")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Workers defined in {path}",
        "1: foo",
        "2: foo",
        "3: foo",
        "4: foo",
        "5: high,low",
        "6: high,low",
        "7: mail",
        "Limits per queue list",
        "foo: max_memory_mb=512",
        "high,low: job_timeout=300, max_jobs=50",
        "mail: job_timeout=20",
    ]


def test_a_pool_ends_a_job_at_the_files_timeout(start_pool, tmp_path, resque):
    # The setting would allow 300 s; the file's 1 s for this list wins.
    config = write(tmp_path / "pool.yml", "demo: 1\nlimits:\n  demo: {job_timeout: 1}\n")
    pool = start_pool("-c", str(config), settings={"RESQUE_JOB_TIMEOUT": 300})
    pool.wait_for_workers({"demo": 1})
    enqueue("Sleep", 60)
    entry = first_failure(resque, pool, timeout=TIMEOUT)
    assert (entry["exception"], entry["error"]) == (
        "resque_pool.errors.JobTimeout",
        "job exceeded its time limit of 1s",
    )
    assert entry["payload"] == {"class": "Sleep", "args": [60]}
