from django.core.management.base import BaseCommand

from apps.sandboxes.images import templates_sync


class Command(BaseCommand):
    help = "Build the base image and built-in template images that are missing, and seed the templates."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="only these templates")
        parser.add_argument("--force", action="store_true", help="rebuild template images even if present")
        parser.add_argument("--no-build", action="store_true", help="only seed the database")

    def handle(self, *args, names, force, no_build, **options):
        templates = templates_sync(build=not no_build, only=names or None, force=force)
        for template in templates:
            self.stderr.write(f"template {template.name}: {template.image}")
