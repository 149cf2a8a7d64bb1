from django.db import models


class SliSample(models.Model):
    """One minute of one SLO's SLI events: how many good and how many in all were counted since the
    previous sample (`good`, `total`), and the cumulative counters they were read from (the next
    sample's delta starts there; a counter that went down was reset by a restart)."""

    slo = models.CharField(max_length=64)
    minute = models.DateTimeField()
    good = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    # Null on a sample added by hand (slo.sli_sample_add): only the recorder's samples are cursors.
    good_cumulative = models.FloatField(null=True, blank=True)
    total_cumulative = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slo", "minute"], name="monitoring_sli_sample_minute")]
        indexes = [
            models.Index(fields=["slo", "-minute"], name="monitoring_sli_sample_recent"),
            models.Index(fields=["minute"], name="monitoring_sli_sample_prune"),  # pruning
        ]

    def __str__(self) -> str:
        return f"{self.slo} {self.minute:%Y-%m-%d %H:%M} {self.good}/{self.total}"
