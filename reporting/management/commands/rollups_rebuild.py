"""``manage.py rollups_rebuild --from 2026-12-01 --to 2026-12-07``: recompute the rollups of a range."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reporting.rollups import rollups_rebuild


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from exc


class Command(BaseCommand):
    help = (
        "Recompute the hourly rollups of the UTC days --from … --to (inclusive) from the raw rows. "
        "Safe while the fold runs; hours past the ping retention keep their ping figures."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, type=_day, help="First UTC day (YYYY-MM-DD).")
        parser.add_argument("--to", dest="end", required=True, type=_day, help="Last UTC day, inclusive.")

    def handle(self, *args: Any, start: date, end: date, **options: Any) -> None:
        if end < start:
            raise CommandError("--to must be on or after --from.")
        hours = rollups_rebuild(
            start=datetime.combine(start, time.min, tzinfo=UTC),
            end=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
        )
        self.stdout.write(f"Rebuilt {hours} hours, {start} to {end} (UTC).")
