"""Loading a resque-scheduler YAML file into ``Schedule`` rows (``load_resque_schedule``):
what is read, what is noted or refused, and reloading (real database)."""

from __future__ import annotations

import pytest

from resque_pool.scheduler.models import Schedule

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
    assert "every_half_minute: every options [{'first_in': '10s'}] ignored" in out
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
