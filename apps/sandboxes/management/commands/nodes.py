import json

from django.core.management.base import BaseCommand

from apps.sandboxes.selectors import nodes_list
from apps.sandboxes.services.nodes import LOCAL_NODE


class Command(BaseCommand):
    help = "List the nodes: the local engine (the implicit default node) and the registered ones."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        rows = [{"name": LOCAL_NODE, "url": "(this host's engine)", "state": "-", "lastSeen": None, "lastError": ""}]
        for node in nodes_list():
            rows.append(
                {
                    "name": node.name,
                    "url": node.docker_url,
                    "state": node.state,
                    "failures": node.failures,
                    "lastSeen": node.last_seen.isoformat() if node.last_seen else None,
                    "lastError": node.last_error,
                    "engineVersion": node.engine_version,
                    "memory": node.memory,
                    "cpus": node.cpus,
                    "labels": node.labels,
                }
            )
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(f"{'NAME':<20} {'STATE':<9} {'DOCKER':<16} {'CPUS':>4} {'MEMORY':>10}  URL")
        for row in rows:
            memory = f"{row['memory'] // 1024**2} MiB" if row.get("memory") else "-"
            self.stdout.write(
                f"{row['name']:<20} {row['state']:<9} {row.get('engineVersion') or '-':<16} "
                f"{row.get('cpus') or '-':>4} {memory:>10}  {row['url']}"
                + (f"  ({row['lastError'][:80]})" if row["lastError"] else "")
            )
