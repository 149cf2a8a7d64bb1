from django.core.management.base import BaseCommand

from apps.sandboxes.reconcile import sandbox_reconcile


class Command(BaseCommand):
    help = "Reconcile sandboxes with the container engine (make run does this at start)."

    def add_arguments(self, parser):
        parser.add_argument("--startup", action="store_true", help="no request is in flight: finish every transition")

    def handle(self, *args, startup, **options):
        report = sandbox_reconcile(startup=startup).as_dict()
        self.stderr.write(f"reconciled: {report or 'nothing to do'}")
