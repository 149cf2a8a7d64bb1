from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.runtime import get_driver
from apps.sandboxes.specs import base_labels, network_name


class Command(BaseCommand):
    help = (
        "Removes everything this instance (VIBEBOX_INSTANCE) has in the engine: containers, volumes, "
        "its network and firewall rules. For throwaway servers (tests, benchmarks); the database is left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--yes", action="store_true", help="really do it")

    def handle(self, *args, yes, **options):
        if not yes:
            raise CommandError(f"this removes every container of instance {settings.VIBEBOX_INSTANCE!r}; pass --yes")
        driver = get_driver()
        containers = driver.list_containers(base_labels())
        for container in containers:
            driver.remove(container.name)
        volumes = driver.list_volumes(base_labels())
        for volume in volumes:
            driver.remove_volume(volume)
        driver.remove_network(network_name())
        self.stderr.write(
            f"instance {settings.VIBEBOX_INSTANCE}: removed {len(containers)} containers, {len(volumes)} volumes, "
            f"network {network_name()}"
        )
