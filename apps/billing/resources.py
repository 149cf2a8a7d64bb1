"""The one table converting UsageRecord amounts (seconds, GiB-seconds, bytes, USD) into the units
prices are quoted in (Resource's labels: vCPU-hours, GiB-hours, GiB, minutes, USD)."""

from dataclasses import dataclass
from decimal import Decimal

from .models import Resource


@dataclass(frozen=True)
class Conversion:
    resource: str
    field: str  # the UsageRecord field summed
    divisor: Decimal  # record amount / divisor = price units
    unit: str  # the price unit's name, singular
    usage_unit: str  # the record amount's unit

    def to_units(self, amount) -> Decimal:
        return Decimal(amount or 0) / self.divisor


HOUR = Decimal(3600)
MINUTE = Decimal(60)
GIB = Decimal(1024**3)

CONVERSIONS: dict[str, Conversion] = {
    c.resource: c
    for c in (
        Conversion(Resource.CPU, "cpu_seconds", HOUR, "vCPU-hour", "CPU-seconds"),
        Conversion(Resource.MEMORY, "memory_gib_seconds", HOUR, "GiB-hour", "GiB-seconds"),
        Conversion(Resource.WORKSPACE, "workspace_gib_seconds", HOUR, "GiB-hour", "GiB-seconds"),
        Conversion(Resource.SNAPSHOTS, "snapshot_gib_seconds", HOUR, "GiB-hour", "GiB-seconds"),
        Conversion(Resource.NETWORK_IN, "net_in_bytes", GIB, "GiB", "bytes"),
        Conversion(Resource.NETWORK_OUT, "net_out_bytes", GIB, "GiB", "bytes"),
        Conversion(Resource.EXECUTION, "execution_seconds", MINUTE, "minute", "seconds"),
        Conversion(Resource.MODEL, "model_cost_usd", Decimal(1), "USD", "USD"),
    )
}
RESOURCES: list[str] = [str(r) for r in Resource]  # the order line items and groupings use
USAGE_FIELDS: list[str] = [CONVERSIONS[r].field for r in RESOURCES]


def units(resource: str, amount) -> Decimal:
    """A UsageRecord amount of `resource` in its price unit."""
    return CONVERSIONS[resource].to_units(amount)
