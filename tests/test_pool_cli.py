"""``manage.py resque_pool`` command line: resque-pool's option precedence (its
``lib/resque/pool/cli.rb`` and ``spec/cli_spec.rb``), ``--test`` and start-up errors."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest
from django.core.management.base import CommandError

from resque_pool.management.commands import resque_pool as command
from resque_pool.models import WorkerCount
from tests.support.common import manage_command


def parse(*argv: str) -> dict:
    parser = command.Command().create_parser("manage.py", "resque_pool")
    options = vars(parser.parse_args(list(argv)))
    command.apply_daemon_defaults(options)
    return options


def test_daemon_defaults():
    options = parse("--daemon")
    assert options["daemon"]
    assert options["stdout_file"] == "log/resque-pool.stdout.log"
    assert options["stderr_file"] == "log/resque-pool.stderr.log"
    assert options["pidfile"] == "tmp/pids/resque-pool.pid"


def test_explicit_values_beat_daemon_defaults():
    options = parse("--stdout", "my.stdout", "--stderr", "my.stderr", "--daemon")
    assert (options["stdout_file"], options["stderr_file"]) == ("my.stdout", "my.stderr")
    assert parse("--daemon", "--pidfile", "my.pid")["pidfile"] == "my.pid"


@pytest.mark.parametrize(
    ("argv", "pidfile", "no_pidfile"),
    [
        (["--no-pidfile"], None, True),
        (["-d", "--no-pidfile"], None, True),
        (["--no-pidfile", "-p", "a.pid"], "a.pid", False),
        (["--no-pidfile", "--pidfile", "my.pid"], "my.pid", False),
        (["-p", "a.pid", "--no-pidfile"], None, True),
        (["--pidfile", "foo.pid", "--hot-swap"], None, True),
    ],
)
def test_pidfile_precedence_follows_argument_order(argv, pidfile, no_pidfile):
    options = parse(*argv)
    assert options["pidfile"] == pidfile
    assert bool(options["no_pidfile"]) == no_pidfile


@pytest.mark.parametrize("argv", [["-d", "-H"], ["-H", "-d"]])
def test_hot_swap_with_daemon_in_either_order(argv):
    options = parse(*argv)
    assert options["pidfile"] is None and options["no_pidfile"]
    assert options["lock_file"] == "tmp/resque-pool.lock"
    assert options["take_over"] and not options["kill_others"]
    assert options["stdout_file"] == "log/resque-pool.stdout.log"
    assert options["stderr_file"] == "log/resque-pool.stderr.log"


def test_the_all_at_once_hot_swap_is_resque_pools():
    options = parse("--hot-swap-all-at-once")
    assert options["kill_others"] and not options["take_over"]
    assert options["no_pidfile"] and options["lock_file"] == "tmp/resque-pool.lock"


def test_hot_swap_keeps_an_explicit_lock():
    assert parse("--lock", "foo.lock", "--hot-swap")["lock_file"] == "foo.lock"
    assert parse("-l", "x")["lock_file"] == "x"


def test_spawn_delay_is_an_integer_of_milliseconds():
    assert parse("-s", "250")["spawn_delay"] == 250
    with pytest.raises(CommandError, match="invalid int value: '1.5'"):
        parse("--spawn-delay", "1.5")


def test_term_behaviour(monkeypatch, caplog):
    monkeypatch.delenv("TERM_CHILD", raising=False)
    monkeypatch.delenv("DYNO", raising=False)
    both = parse("--term-graceful", "--term-graceful-wait")
    assert command.term_behavior(both) == "graceful_worker_shutdown_and_wait"
    assert command.term_behavior(parse("--term-graceful")) == "graceful_worker_shutdown"
    assert command.term_behavior(parse("--term-immediate")) is None
    assert command.term_behavior(parse()) is None
    caplog.set_level(logging.INFO, logger="resque_pool")
    monkeypatch.setenv("TERM_CHILD", "1")
    assert command.term_behavior(parse()) == "graceful_worker_shutdown_and_wait"
    assert "TERM_CHILD enabled, so will use 'term-graceful-and-wait' behaviour" in caplog.text
    monkeypatch.delenv("TERM_CHILD")
    monkeypatch.setenv("DYNO", "web.1")
    command.term_behavior(parse())
    assert "Heroku" in caplog.text


def test_environment_variable_order(monkeypatch):
    for name in ("RACK_ENV", "RAILS_ENV", "RESQUE_ENV"):
        monkeypatch.delenv(name, raising=False)
    assert command.environment_name() is None
    monkeypatch.setenv("RESQUE_ENV", "c")
    assert command.environment_name() == "c"
    monkeypatch.setenv("RAILS_ENV", "b")
    assert command.environment_name() == "b"
    monkeypatch.setenv("RACK_ENV", "a")
    assert command.environment_name() == "a"


# -- --test and start-up errors (subprocesses) ---------------------------------------------


def test_test_option_prints_workers_from_a_file(run_manage, tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text('foo: 1\n"bar, baz": 2\nproduction:\n  foo: 2\n  quux: 1\n')
    result = run_manage("resque_pool", "--test", "-c", str(path), "-E", "production")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Workers defined in {path}",
        "1: foo",
        "2: foo",
        "3: bar,baz",
        "4: bar,baz",
        "5: quux",
    ]
    via_env = run_manage("resque_pool", "--test", env={"RESQUE_POOL_CONFIG": str(path)})
    assert via_env.stdout.splitlines()[1:] == ["1: foo", "2: bar,baz", "3: bar,baz"]


def test_the_pool_runs_this_apps_checks_and_not_djangos(run_manage, tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("foo: 1\n")
    django_error = {"DJANGO_SETTINGS_MODULE": "tests.support.django_check_error_settings"}
    refused = run_manage("check", env=django_error)
    assert refused.returncode != 0
    assert "caches.E001" in refused.stderr
    started = run_manage("resque_pool", "--test", "-c", str(path), env=django_error)
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[1:] == ["1: foo"]
    ours = run_manage("resque_pool", "--test", "-c", str(path), env={"RESQUE_NAMESPACE": ""})
    assert ours.returncode != 0
    assert "resque_pool.E002" in ours.stderr


def test_a_pool_that_reads_no_file_does_not_import_yaml(run_manage, database_env):
    """PyYAML costs every pool start about 13 ms: only a pool that reads a file pays it."""
    WorkerCount.objects.create(queues="high", count=1)
    code = (
        "import sys, django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('resque_pool', '--test')\n"
        "print('yaml imported:', 'yaml' in sys.modules)\n"
    )
    result = run_manage("shell", "-c", code, env=database_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["1: high", "yaml imported: False"]


def test_test_option_with_the_database(run_manage, database_env):
    WorkerCount.objects.create(queues="high,low", count=2)
    WorkerCount.objects.create(queues="mail", count=1, environment="production")
    WorkerCount.objects.create(queues="mail", count=3, environment="production", pool="box")
    result = run_manage(
        "resque_pool", "--test", "--pool", "box", env={**database_env, "RACK_ENV": "production"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Workers defined in database",
        "1: high,low",
        "2: high,low",
        "3: mail",
        "4: mail",
        "5: mail",
    ]


def test_test_option_with_a_custom_loader(run_manage, tmp_path):
    count_file = tmp_path / "count"
    count_file.write_text("2")
    result = run_manage(
        "resque_pool",
        "--test",
        "-E",
        "fake",
        settings={
            "RESQUE_POOL_CONFIG_LOADER": "tests.support.processes.ReversingLoader",
            "TEST_COUNT_FILE": str(count_file),
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Workers defined in tests.support.processes.ReversingLoader",
        "1: ekaf",
        "2: ekaf",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("foo: [\n", "not valid YAML"),
        ("- a\n", "expected a mapping"),
        ("foo: two\n", "must be an integer >= 0"),
    ],
)
def test_bad_explicit_config_exits_2_with_one_line(spawn_manage, tmp_path, content, message):
    path = tmp_path / "pool.yml"
    if content is not None:
        path.write_text(content)
    process = spawn_manage("resque_pool", "-c", str(path), stderr=-1, stdout=-1)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert message in lines[0] and str(path) in lines[0]
    assert stdout == ""  # nothing started, nothing logged


@pytest.mark.slow  # a manage.py process, started here rather than by run_manage
def test_a_default_resque_pool_file_is_only_pointed_out(resque, database_env, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "resque-pool.yml").write_text("foo: 3\n")
    WorkerCount.objects.create(queues="demo", count=1)
    result = subprocess.run(
        manage_command("resque_pool", "--test"),
        cwd=tmp_path,
        env=resque.env(**database_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Workers defined in database", "1: demo"]
    assert "config/resque-pool.yml exists but is not read" in result.stderr


def test_test_option_refuses_a_fifo_without_hanging(run_manage, tmp_path):
    fifo = tmp_path / "pool.yml"
    os.mkfifo(fifo)
    result = run_manage("resque_pool", "--test", "-c", str(fifo), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"CommandError: {fifo}: not a regular file"


def test_version_is_ours(run_manage):
    from resque_pool import __version__

    result = run_manage("resque_pool", "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"django-resque-pool {__version__}"
