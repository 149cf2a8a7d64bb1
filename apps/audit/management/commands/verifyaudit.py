from django.core.management.base import BaseCommand, CommandError

from apps.audit import services


class Command(BaseCommand):
    help = "Checks every organization's audit chain (or one's) and reports the first broken link."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="an organization's id (org_…); default: every chain")

    def handle(self, *args, org=None, **options):
        broken = services.verify(org)
        if broken is not None:
            raise CommandError(f"audit log broken at {broken}")
        self.stdout.write("audit log intact")
