"""Writes the GraphQL schema's SDL to docs/schema.graphql; `--check` exits 1 when the file differs."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.graphql_api.schema import schema

DEFAULT_PATH = Path(settings.BASE_DIR) / "docs" / "schema.graphql"


def sdl() -> str:
    return schema.as_str().rstrip("\n") + "\n"


class Command(BaseCommand):
    help = "Write the GraphQL SDL to docs/schema.graphql (--check: fail if it is out of date)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 if the file differs from the code.")
        parser.add_argument("--path", default=str(DEFAULT_PATH), help="Where the SDL lives.")

    def handle(self, *args, check=False, path=None, **options):
        target = Path(path)
        wanted = sdl()
        current = target.read_text() if target.exists() else None
        if check:
            if current != wanted:
                raise CommandError(f"{target} is out of date: run `python manage.py graphql_schema`.")
            self.stdout.write(f"{target} is up to date.")
            return
        target.write_text(wanted)
        self.stdout.write(f"Wrote {target}.")
