"""``python manage.py load_resque_schedule FILE [--replace] [--dry-run]``: load a
resque-scheduler schedule file into the ``Schedule`` table."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from resque_pool.scheduler.models import Schedule
from resque_pool.scheduler.recurring import start_at
from resque_pool.scheduler.when import utc_text
from resque_pool.scheduler.yaml_schedule import ScheduleFileError, parse, read


class Command(BaseCommand):
    help = (
        "Create or update recurring schedules from a resque-scheduler YAML file (cron or "
        "every, class, queue, args, description). Nothing is saved unless every entry is valid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the schedule file, e.g. config/resque_schedule.yml")
        parser.add_argument(
            "--replace", action="store_true", help="delete schedules the file does not name"
        )
        parser.add_argument("--dry-run", action="store_true", help="check the file, save nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # Bounded as the pool's own file: a FIFO, /dev/zero or a huge file is one line
            # at once, never a hang or gigabytes of memory.
            text = read(options["file"])
        except ScheduleFileError as error:
            raise CommandError(str(error)) from None
        try:
            entries = parse(text)
        except ScheduleFileError as error:
            raise CommandError(f"{options['file']}: {error}") from None
        problems = []
        rows = []
        for entry in entries:
            row = Schedule.objects.filter(name=entry.name).first() or Schedule(name=entry.name)
            changed = row.pk is None
            for attribute, value in entry.values.items():
                changed = changed or getattr(row, attribute) != value
                setattr(row, attribute, value)

            try:
                row.full_clean(validate_unique=False)
            except ValidationError as error:
                messages = "; ".join(
                    f"{field}: {' '.join(texts)}" for field, texts in error.message_dict.items()
                )
                problems.append(f"{entry.name}: {messages}")
            # An unchanged row is not saved: a save counts as an edit, which restarts the
            # schedule's timing (docs/scheduling.md, missed runs).
            rows.append((row, entry, changed))
        if problems:
            raise CommandError(f"{options['file']}: " + " | ".join(problems))
        for _row, entry, _changed in rows:
            for note in entry.notes:
                self.stdout.write(f"note: {note}")
        if options["dry_run"]:
            self.stdout.write(f"{len(rows)} schedule(s) valid; nothing saved (--dry-run)")
            return
        with transaction.atomic():
            created = updated = unchanged = 0
            for row, entry, changed in rows:
                if not changed:
                    unchanged += 1
                    if entry.first_run is not None:
                        self.stdout.write(f"note: {entry.name}: unchanged, first run not set again")
                    continue
                created += row.pk is None
                updated += row.pk is not None
                row.save()
                if entry.first_run is not None:
                    start_at(row, entry.first_run)
                    self.stdout.write(f"{entry.name}: first run at {utc_text(entry.first_run)}")
            deleted = 0
            if options["replace"]:
                deleted, _ = Schedule.objects.exclude(
                    name__in=[e.name for _r, e, _c in rows]
                ).delete()
        self.stdout.write(
            f"{created} created, {updated} updated, {unchanged} unchanged, {deleted} deleted"
        )
