"""``manage.py load_resque_schedule`` reads through the pool's bounded YAML reader: a
device, a FIFO, a huge file and an alias bomb are each one line on stderr and a non-zero
exit, promptly (real ``manage.py`` processes)."""

from __future__ import annotations

import os
import time

import pytest

from tests.test_pool_yaml import alias_bomb

# Start-up of manage.py (Django) included; the unbounded reader ran 28 s on the bomb and
# grew /dev/zero to gigabytes until killed.
PROMPT = 20.0


def refused(run_manage, path, database_env) -> str:
    started = time.monotonic()
    result = run_manage("load_resque_schedule", str(path), env=database_env, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < PROMPT, elapsed
    return lines[0]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_at_once(run_manage, tmp_path, database_env, device):
    path = tmp_path / "schedule.yml"
    path.symlink_to(device)
    line = refused(run_manage, path, database_env)
    assert line == f"CommandError: {path}: not a regular file"


def test_a_fifo_without_a_writer_is_refused_at_once(run_manage, tmp_path, database_env):
    path = tmp_path / "schedule.yml"
    os.mkfifo(path)
    line = refused(run_manage, path, database_env)
    assert line == f"CommandError: {path}: not a regular file"


def test_the_alias_bomb_is_refused(run_manage, tmp_path, database_env):
    path = tmp_path / "schedule.yml"
    path.write_text(alias_bomb())
    line = refused(run_manage, path, database_env)
    assert "aliases expand to more than 1000 nodes" in line
    assert line.startswith(f"CommandError: {path}: line ")


def test_a_file_over_one_mebibyte_is_refused(run_manage, tmp_path, database_env):
    path = tmp_path / "schedule.yml"
    path.write_text("# padding\n" * 120_000)
    line = refused(run_manage, path, database_env)
    assert line == f"CommandError: {path}: larger than 1 MiB; a schedule file is a few lines"


def test_a_missing_file_is_one_line(run_manage, tmp_path, database_env):
    path = tmp_path / "missing.yml"
    line = refused(run_manage, path, database_env)
    assert line == f"CommandError: {path}: cannot read: No such file or directory"


@pytest.mark.django_db
def test_ruby_booleans_and_merge_keys_still_read_as_resque_scheduler_writes_them(tmp_path):
    from django.core.management import call_command

    from resque_pool.scheduler.models import Schedule

    path = tmp_path / "schedule.yml"
    path.write_text(
        "defaults: &defaults\n  class: Noop\n  every: 5m\n"
        "first:\n  <<: *defaults\n  args: [yes, on]\n"
    )
    call_command("load_resque_schedule", str(path))
    row = Schedule.objects.get(name="first")
    # YAML 1.1 booleans, as Ruby's Psych reads the file (the pool's own files use 1.2).
    assert (row.job_name, row.interval, row.args) == ("Noop", 300, [True, True])
