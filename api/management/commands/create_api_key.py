"""``python manage.py create_api_key NAME [--scope campaigns --scope events …]``: prints the key once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import Scope
from api.services import api_key_create
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key and print it once; without --scope the key gets every scope."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=Scope.values,
            help="Repeat for several scopes. Default: every scope.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_key, raw_key = api_key_create(name=options["name"], scopes=options["scopes"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"Created API key {api_key.name!r} with scopes: {', '.join(api_key.scopes)}. "
            "Store it now: it cannot be shown again."
        )
        # Alone on stdout so scripts can capture it: KEY=$(python manage.py create_api_key ci).
        self.stdout.write(raw_key)
