"""``python manage.py load_resque_schedule FILE [--replace] [--dry-run]``: load a
resque-scheduler schedule file into the ``Schedule`` table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from resque_pool.scheduler.models import Schedule
from resque_pool.scheduler.yaml_schedule import ScheduleFileError, parse


class Command(BaseCommand):
    help = (
        "Create or update recurring schedules from a resque-scheduler YAML file (cron or "
        "every, class, queue, args, description). Nothing is saved unless every entry is valid."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the schedule file, e.g. config/resque_schedule.yml")
        parser.add_argument(
            "--replace", action="store_true", help="delete schedules the file does not name"
        )
        parser.add_argument("--dry-run", action="store_true", help="check the file, save nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            text = Path(options["file"]).read_text()
        except OSError as error:
            raise CommandError(f"{options['file']}: {error.strerror}") from None
        try:
            entries = parse(text)
        except ScheduleFileError as error:
            raise CommandError(f"{options['file']}: {error}") from None
        problems = []
        rows = []
        for entry in entries:
            row = Schedule.objects.filter(name=entry.name).first() or Schedule(name=entry.name)
            for attribute, value in entry.values.items():
                setattr(row, attribute, value)
            try:
                row.full_clean(validate_unique=False)
            except ValidationError as error:
                messages = "; ".join(
                    f"{field}: {' '.join(texts)}" for field, texts in error.message_dict.items()
                )
                problems.append(f"{entry.name}: {messages}")
            rows.append((row, entry))
        if problems:
            raise CommandError(f"{options['file']}: " + " | ".join(problems))
        for _row, entry in rows:
            for note in entry.notes:
                self.stdout.write(f"note: {note}")
        if options["dry_run"]:
            self.stdout.write(f"{len(rows)} schedule(s) valid; nothing saved (--dry-run)")
            return
        with transaction.atomic():
            created = updated = 0
            for row, _entry in rows:
                created += row.pk is None
                updated += row.pk is not None
                row.save()
            deleted = 0
            if options["replace"]:
                deleted, _ = Schedule.objects.exclude(name__in=[e.name for _r, e in rows]).delete()
        self.stdout.write(f"{created} created, {updated} updated, {deleted} deleted")
