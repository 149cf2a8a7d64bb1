from django.conf import settings
from django.db import models
from django.utils import timezone

from vibebox.ids import random_id


def new_key_id() -> str:
    return random_id("key_", 16)


class ApiKey(models.Model):
    id = models.CharField(primary_key=True, max_length=24, default=new_key_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    # The organization the key acts in (null only for rows older than organizations, filled by
    # migration 0004).
    org = models.ForeignKey("orgs.Organization", null=True, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=8)  # "vb_live_" or "vb_test_"
    display = models.CharField(max_length=16)  # "vb_live_AbC1", for lists
    scopes = models.JSONField(default=list)
    rate_limit = models.CharField(max_length=20, blank=True, default="")  # "100/min"; empty: settings
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The sandbox a key was made for (claude/enable's MCP key): destroying it revokes the key. An id,
    # not a foreign key: keys sit below sandboxes and never import them.
    sandbox_id = models.CharField(max_length=32, blank=True, default="", db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.display}…)"

    @property
    def is_test(self) -> bool:
        return self.key_prefix == "vb_test_"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ApiKeyUsage(models.Model):
    """Requests per key per day (UTC)."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="unique_key_usage_day")]
        ordering = ["-day"]

    def __str__(self):
        return f"{self.key_id} {self.day}: {self.requests}"


class ApiKeyUsageFlush(models.Model):
    """A batch of request counts moved from Redis into ApiKeyUsage (keys/usage.py): written in the
    same transaction as the counts, so a batch retried after a crash is never counted twice."""

    id = models.CharField(primary_key=True, max_length=40)
    flushed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return self.id
