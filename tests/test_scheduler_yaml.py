"""Loading a resque-scheduler YAML file into ``Schedule`` rows (``load_resque_schedule``):
what is read, what is noted or refused, reloading, and rufus' ``first_in``/``first_at``
with a fake clock and with a real scheduler (real Redis, real database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from resque_pool.scheduler import recurring
from resque_pool.scheduler.models import Schedule
from tests.support.common import wait_until

SCHEDULE_FILE = """\
queue_documents_for_indexing:
  cron: "0 0 * * *"
  class: "Noop"
  queue: high
  args:
  description: "This job queues all content for indexing"

clear_leaderboards_contributors:
  cron: "30 6 * * 1 America/Chicago"
  class: "Ruby::ClearLeaderboards"
  queue: low
  args: contributors
  rails_env: production

every_half_minute:
  every: ["30s", {first_in: "10s"}]
  class: Ruby::Thing
  queue: ruby
  args: [1, {"a": 2}]

with_seconds:
  cron: "*/10 * * * * *"
  class: Noop
"""


@pytest.mark.django_db
def test_load_a_resque_scheduler_file(tmp_path, capsys):
    from django.core.management import call_command

    path = tmp_path / "resque_schedule.yml"
    path.write_text(SCHEDULE_FILE)
    call_command("load_resque_schedule", str(path))
    out = capsys.readouterr().out
    assert "4 created, 0 updated, 0 unchanged, 0 deleted" in out
    assert "every_half_minute: first run at " in out
    assert "rails_env ignored" in out
    rows = {row.name: row for row in Schedule.objects.all()}
    assert rows["queue_documents_for_indexing"].args == []
    assert rows["queue_documents_for_indexing"].queue == "high"
    assert rows["clear_leaderboards_contributors"].args == ["contributors"]
    assert rows["clear_leaderboards_contributors"].cron == "30 6 * * 1 America/Chicago"
    assert rows["every_half_minute"].interval == 30
    assert rows["every_half_minute"].args == [1, {"a": 2}]
    assert rows["with_seconds"].job_name == "Noop"
    # Loading again leaves unchanged rows alone (an edit would restart their timing);
    # --replace deletes what the file no longer names.
    before = Schedule.objects.get(name="queue_documents_for_indexing").updated_at
    path.write_text(
        SCHEDULE_FILE.split("\nevery_half_minute:")[0].replace("30 6 * * 1", "45 6 * * 1")
    )
    call_command("load_resque_schedule", str(path), "--replace")
    assert "0 created, 1 updated, 1 unchanged, 2 deleted" in capsys.readouterr().out
    assert Schedule.objects.get(name="queue_documents_for_indexing").updated_at == before
    assert set(Schedule.objects.values_list("name", flat=True)) == {
        "queue_documents_for_indexing",
        "clear_leaderboards_contributors",
    }


@pytest.mark.django_db
def test_a_bad_file_saves_nothing(tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    path = tmp_path / "s.yml"
    path.write_text("a:\n  cron: '* * * * *'\n  class: Record\nb:\n  cron: '99 * * * *'\n")
    with pytest.raises(CommandError, match="b: cron '99 \\* \\* \\* \\*': Bad minute"):
        call_command("load_resque_schedule", str(path))
    path.write_text("a:\n  every: 5m\n  class: Nope\n")
    with pytest.raises(CommandError, match="No job is registered as 'Nope'"):
        call_command("load_resque_schedule", str(path))
    assert not Schedule.objects.exists()


def test_bad_files_from_the_shell_are_one_line(run_manage, tmp_path):
    path = tmp_path / "s.yml"
    path.write_text("- just\n- a list\n")
    result = run_manage("load_resque_schedule", str(path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"CommandError: {path}: the file must map schedule names to their settings"
    )
    result = run_manage("load_resque_schedule", str(tmp_path / "missing.yml"))
    assert result.returncode == 1 and "No such file" in result.stderr


# -- first_in / first_at -----------------------------------------------------------------


def load(tmp_path, text: str) -> tuple[float, float, str]:
    """Load ``text`` as a schedule file: (time before, time after, the command's output)."""
    from io import StringIO

    path = tmp_path / "first.yml"
    path.write_text(text)
    out = StringIO()
    before = time.time()
    call_command("load_resque_schedule", str(path), stdout=out)
    return before, time.time(), out.getvalue()


def upcoming(name: str) -> float:
    """The next run the admin shows (the same computation the scheduler makes)."""
    schedule = Schedule.objects.get(name=name)
    lasts, slots = recurring.last_runs(), recurring.slots()
    return schedule.next_run(
        recurring.base_time(schedule, lasts.get(name), slots.get(name))
    ).timestamp()


@pytest.mark.django_db
def test_first_in_brings_the_first_run_of_an_hourly_schedule_forward(resque, tmp_path):
    before, after, out = load(
        tmp_path, "hourly:\n  every: ['1h', {first_in: '10s'}]\n  class: Record\n  args: h\n"
    )
    assert "hourly: first run at " in out
    assert before + 10 <= upcoming("hourly") <= after + 10
    engine = recurring.Recurring()
    assert engine.tick(before + 9.9) == 0
    assert engine.tick(after + 10) == 1  # not one hour after loading
    assert engine.tick(after + 11) == 0
    # Then every hour from that run, as rufus does.
    assert engine.tick(before + 10 + 3598) == 0
    assert engine.tick(after + 10 + 3600) == 1
    assert resque.client.llen(resque.key("queue", "demo")) == 2


@pytest.mark.django_db
def test_first_in_longer_than_the_interval_and_first_at(resque, tmp_path):
    before, after, _ = load(
        tmp_path,
        # Block style with Ruby's symbol keys, as Ruby's YAML.dump writes them.
        "late:\n  every:\n  - 30s\n  - :first_in: 2m\n  class: Record\n  args: l\n"
        "dated:\n  every: ['1d', {first_at: '2099-01-01 09:00:00 +0100'}]\n  class: Noop\n",
    )
    assert before + 120 <= upcoming("late") <= after + 120
    assert upcoming("dated") == datetime(2099, 1, 1, 8, 0, tzinfo=UTC).timestamp()
    engine = recurring.Recurring()
    for seconds in (30, 60, 119.9):  # no run at 30 s or 60 s: the first is at 2 minutes
        assert engine.tick(before + seconds) == 0
    assert engine.tick(after + 120) == 1
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [
        '{"class":"Record","args":["l"]}'
    ]


@pytest.mark.django_db
def test_first_at_in_the_past_is_refused_as_rufus_does_unless_no_error(resque, tmp_path):
    path = tmp_path / "past.yml"
    path.write_text("old:\n  every: ['1h', {first_at: '2001-01-01T00:00:00Z'}]\n  class: Noop\n")
    with pytest.raises(CommandError, match="old: cannot set first_at in the past"):
        call_command("load_resque_schedule", str(path))
    assert not Schedule.objects.exists()
    _, after, _ = load(
        tmp_path,
        "old:\n  every: ['1h', {first_at: '2001-01-01T00:00:00Z', first_at_no_error: true}]\n"
        "  class: Record\n  args: o\n"
        "now:\n  every: ['1h', {first: now, times: 3}]\n  class: Record\n  args: n\n",
    )
    # Both run at once (rufus: a past first_at with first_at_no_error, or "now").
    assert recurring.Recurring().tick(after) == 2


@pytest.mark.django_db
def test_reloading_an_unchanged_entry_does_not_set_its_first_run_again(resque, tmp_path):
    text = "hourly:\n  every: ['1h', {first_in: '10s', times: 3}]\n  class: Record\n  args: h\n"
    _, _, out = load(tmp_path, text)
    assert "note: hourly: every options {'times': 3} ignored" in out
    first = upcoming("hourly")
    _, _, out = load(tmp_path, text)
    assert "note: hourly: unchanged, first run not set again" in out
    assert "0 created, 0 updated, 1 unchanged" in out
    assert upcoming("hourly") == first


def test_a_real_scheduler_fires_the_first_run_first_in_after_loading(
    resque, run_manage, spawn_manage, database_env, tmp_path
):
    """Loaded by ``manage.py load_resque_schedule``, fired by ``manage.py resque_scheduler``:
    an hourly schedule with ``first_in: 2s`` runs within the bound, not in an hour."""
    path = tmp_path / "real.yml"
    path.write_text(
        "soon:\n  every: ['1h', {first_in: '2s'}]\n  class: Record\n  queue: nobody\n  args: s\n"
    )
    result = run_manage("load_resque_schedule", str(path), env=database_env)
    assert result.returncode == 0, result.stderr
    spawn_manage("resque_scheduler", env=database_env)
    queue = resque.key("queue", "nobody")
    wait_until(lambda: resque.client.llen(queue), 30, message="the first run")
    assert resque.client.lrange(queue, 0, -1) == ['{"class":"Record","args":["s"]}']
