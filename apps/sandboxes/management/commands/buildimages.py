from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.marketplace.catalog import built_in_templates
from apps.marketplace.selectors import edit_distance
from apps.sandboxes.images import pooled_template_names, templates_register, templates_sync
from apps.sandboxes.tasks import build_templates
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = (
        "Build the base images and built-in template images that are missing, and seed the templates. "
        "--pooled builds only the templates the warm pools fill (the rest are listed as queued), "
        "--background sends the missing ones' build to the Celery worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="only these templates")
        parser.add_argument("--force", action="store_true", help="rebuild template images even if present")
        parser.add_argument("--no-build", action="store_true", help="only seed the database")
        parser.add_argument(
            "--pooled", action="store_true", help="build only the templates of VIBEBOX_POOL_SIZES; queue the rest"
        )
        parser.add_argument(
            "--background", action="store_true", help="queue the missing images' build on the Celery worker"
        )

    def handle(self, *args, names, force, no_build, pooled, background, **options):
        sources = built_in_templates()
        known = {source.name for source in sources}
        unknown = sorted(set(names) - known)
        if unknown:
            there = ", ".join(sorted(known))
            near = sorted(known, key=lambda name: edit_distance(unknown[0], name))[:1]
            raise CommandError(
                f"no built-in template named {', '.join(unknown)} (did you mean {near[0]}? there are: {there})"
            )
        if pooled:
            names = [name for name in pooled_template_names(sources) if not names or name in names]
        try:
            if background:
                templates_register(only=names or None)
                if not settings.VIBEBOX_TEMPLATE_BACKGROUND_BUILDS:
                    self.stderr.write("background template builds are off (VIBEBOX_TEMPLATE_BACKGROUND_BUILDS)")
                    return
                build_templates.delay(names or None)
                self.stderr.write("template builds queued on the worker (GET /api/v1/templates shows their state)")
                return
            if pooled:
                # Only these (maybe none); the others are listed, queued (or ready if built already).
                templates = templates_sync(build=not no_build, only=names, force=force) if names else []
                templates_register()
            else:
                templates = templates_sync(build=not no_build, only=names or None, force=force)
        except errors.ApplicationError as exc:
            # The build log is already on stderr; a traceback would only bury its last lines.
            raise CommandError(exc.message) from None
        for template in templates:
            self.stderr.write(f"template {template.name}: {template.image}")
