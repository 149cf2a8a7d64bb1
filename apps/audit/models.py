"""The audit log: one append-only, hash-chained list of entries per organization.

Each entry stores the SHA-256 of the previous entry of its organization (`prev_hash`) and of its
own content (`hash`, services.entry_hash), so editing, inserting or deleting a row breaks the
chain where it happened (`manage.py verifyaudit` finds the first broken link). `AuditHead` holds
each chain's end: appending locks it, so entries of one organization get consecutive numbers.

Organizations and users are referred to by id, not foreign key: the log outlives what it records.
"""

from django.db import models

GENESIS = "0" * 64  # the prev_hash of a chain's first entry

SOURCES = ("api", "websocket", "dashboard", "admin", "mcp", "system")


class AppendOnly(models.QuerySet):
    """No bulk update or delete: entries leave only through retention (services.prune)."""

    def update(self, **kwargs):
        raise TypeError("audit entries are append-only")

    def delete(self):
        raise TypeError("audit entries are append-only; services.prune archives and removes old ones")


class AuditEntry(models.Model):
    org_id = models.CharField(max_length=24, blank=True)  # "": the platform's own chain (failed sign-ins)
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150)  # the username at the time, or "system"
    key_id = models.CharField(max_length=24, blank=True)
    source = models.CharField(max_length=16, choices=[(source, source) for source in SOURCES])
    ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AppendOnly.as_manager()

    class Meta:
        ordering = ["org_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["org_id", "seq"], name="audit_entry_unique_seq")]
        indexes = [
            models.Index(fields=["org_id", "created_at"], name="audit_org_time"),
            models.Index(fields=["org_id", "action"], name="audit_org_action"),
            models.Index(fields=["org_id", "target_id"], name="audit_org_target"),
        ]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.org_id or 'platform'}#{self.seq} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit entries are append-only")


class AuditHead(models.Model):
    """The end of one organization's chain, and where retention cut its beginning."""

    org_id = models.CharField(primary_key=True, max_length=24, blank=True)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS)
    # Retention removed entries up to pruned_seq; the first kept entry's prev_hash is pruned_hash.
    pruned_seq = models.PositiveBigIntegerField(default=0)
    pruned_hash = models.CharField(max_length=64, default=GENESIS)

    def __str__(self):
        return f"{self.org_id or 'platform'} at #{self.seq}"
