from django.core.management.base import BaseCommand, CommandError

from apps.marketplace.catalog import built_in_templates
from apps.sandboxes.images import templates_sync
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = "Build the base image and built-in template images that are missing, and seed the templates."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="only these templates")
        parser.add_argument("--force", action="store_true", help="rebuild template images even if present")
        parser.add_argument("--no-build", action="store_true", help="only seed the database")

    def handle(self, *args, names, force, no_build, **options):
        known = {source.name for source in built_in_templates()}
        unknown = sorted(set(names) - known)
        if unknown:
            there = ", ".join(sorted(known))
            raise CommandError(f"no built-in template named {', '.join(unknown)} (there are: {there})")
        try:
            templates = templates_sync(build=not no_build, only=names or None, force=force)
        except errors.ApplicationError as exc:
            # The build log is already on stderr; a traceback would only bury its last lines.
            raise CommandError(exc.message) from None
        for template in templates:
            self.stderr.write(f"template {template.name}: {template.image}")
