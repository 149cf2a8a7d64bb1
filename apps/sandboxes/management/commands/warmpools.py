import json

from django.core.management.base import BaseCommand

from apps.sandboxes.api.schema import PoolSerializer
from apps.sandboxes.services.pools import pool_drain, pool_stats, pools_maintain


class Command(BaseCommand):
    help = "Warm pools: fill them (make run does this at start), drain them, or show their state."

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--fill", action="store_true", help="health-check and fill every pool to its target")
        action.add_argument("--drain", action="store_true", help="remove every pooled container")

    def handle(self, *args, fill, drain, **options):
        if drain:
            self.stderr.write(f"warm pools: removed {pool_drain()} pooled containers")
            return
        if fill:
            report = pools_maintain()
            started = sum(item.get("started", 0) for item in report.values())
            self.stderr.write(f"warm pools: {started} containers started ({report})")
        # as GET /api/v1/pools lists them
        self.stdout.write(json.dumps(PoolSerializer(pool_stats(), many=True).data, indent=2))
