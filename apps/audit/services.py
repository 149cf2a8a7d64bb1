"""Writing the audit log, checking its chains, and retention.

Every change through any door calls record() from the service that makes it (never a model
signal: the admin's saves are recorded by its own hooks, apps/audit/admin.py). Entries name
fields, never secret values: record() masks any key that looks like a secret, caps texts (a
command is kept to MAX_TEXT characters) and the whole entry's size.
"""

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .context import current
from .models import AuditEntry, AuditHead

MAX_TEXT = 4096  # characters kept of one text value (a command, a path)
MAX_CHANGES = 16 * 1024  # bytes of JSON kept of one entry's changes
MASK = "[redacted]"
_SECRET_WORDS = ("secret", "password", "token", "apikey", "api_key", "anthropic")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _clean(value, depth: int = 0):
    if isinstance(value, dict):
        return {str(k)[:64]: (MASK if _is_secret(str(k)) else _clean(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in list(value)[:100]]
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return round(value, 6)
    return str(value)[:MAX_TEXT]


def _bounded(changes: dict) -> dict:
    cleaned = _clean(changes or {})
    if len(json.dumps(cleaned, default=str)) > MAX_CHANGES:
        return {"truncated": True, "fields": sorted(cleaned)[:100]}
    return cleaned


def content(entry: AuditEntry) -> dict:
    """What an entry's hash covers: every field but its own id and hash."""
    return {
        "org": entry.org_id,
        "seq": entry.seq,
        "at": entry.created_at.isoformat(),
        "actorUserId": entry.actor_user_id,
        "actor": entry.actor,
        "keyId": entry.key_id,
        "source": entry.source,
        "ip": entry.ip,
        "userAgent": entry.user_agent,
        "action": entry.action,
        "targetType": entry.target_type,
        "targetId": entry.target_id,
        "changes": entry.changes,
        "prev": entry.prev_hash,
    }


def entry_hash(entry: AuditEntry) -> str:
    canonical = json.dumps(content(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# What an entry calls a model's objects, where the model's name would not read well.
TARGET_TYPES = {
    "apikey": "key",
    "organization": "org",
    "membership": "member",
    "sandboxgrant": "grant",
    "claudeask": "claude_ask",
    "changeset": "change_set",
    "agentrun": "agent_run",
    "agenttask": "agent_task",
}


def org_id_of(obj) -> str:
    if obj._meta.label == "orgs.Organization":
        return obj.pk
    org_id = getattr(obj, "org_id", None)
    if org_id is None and getattr(obj, "sandbox_id", None):
        org_id = obj.sandbox.org_id
    return org_id or ""


def record(
    action: str,
    *,
    target=None,
    org_id: str | None = None,
    target_type: str = "",
    target_id: str = "",
    changes: dict | None = None,
    user=None,
) -> AuditEntry:
    """Appends one entry to an organization's chain (`org_id`, else the target's), in the
    caller's transaction if there is one (so a change and its entry commit or roll back
    together). `target`: the model object changed (its type and id are taken from it). The actor
    comes from the context (apps/audit/context.py) unless `user` names one (a sign-in, before
    the request has a user)."""
    if target is not None:
        name = target._meta.model_name
        target_type, target_id = target_type or TARGET_TYPES.get(name, name), target_id or target.pk
        org_id = org_id if org_id is not None else org_id_of(target)
    ctx = current()
    actor_user, actor_key = ctx.actor()
    if user is not None:
        actor_user, actor_key = user, ""
    org_id = org_id or ""
    entry = AuditEntry(
        org_id=org_id or "",
        actor_user_id=getattr(actor_user, "pk", None),
        actor=actor_user.get_username()[:150] if actor_user is not None else ctx.anonymous_name(),
        key_id=actor_key[:24],
        source=ctx.source,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        action=action[:64],
        target_type=target_type[:32],
        target_id=str(target_id)[:64],
        changes=_bounded(changes or {}),
    )
    # Round-tripped through JSON now, so the hash covers what the database will give back.
    entry.changes = json.loads(json.dumps(entry.changes, default=str))
    with transaction.atomic():
        # The chain's end, locked (PostgreSQL: the row; SQLite: IMMEDIATE transactions already
        # serialize writers), so two writers of one organization never take the same number.
        head, _ = AuditHead.objects.select_for_update().get_or_create(org_id=entry.org_id)
        entry.seq = head.seq + 1
        entry.prev_hash = head.hash
        entry.created_at = timezone.now()
        entry.hash = entry_hash(entry)
        entry.save(force_insert=True)
        AuditHead.objects.filter(org_id=entry.org_id).update(seq=entry.seq, hash=entry.hash)
    return entry


@dataclass(frozen=True)
class Break:
    org_id: str
    seq: int
    entry_id: int | None
    reason: str

    def __str__(self):
        where = f"organization {self.org_id or '(platform)'}, entry #{self.seq}"
        return f"{where}{f' (row {self.entry_id})' if self.entry_id else ''}: {self.reason}"


def verify(org_id: str | None = None) -> Break | None:
    """The first broken link of one chain (or of every chain, org by org); None when all hold."""
    heads = AuditHead.objects.order_by("org_id")
    if org_id is not None:
        heads = heads.filter(org_id=org_id)
    for head in heads.iterator():
        broken = _verify_chain(head)
        if broken is not None:
            return broken
    # Entries of a chain whose head is gone (the head row deleted to hide them).
    orphans = AuditEntry.objects.exclude(org_id__in=AuditHead.objects.values("org_id"))
    if org_id is not None:
        orphans = orphans.filter(org_id=org_id)
    orphan = orphans.order_by("org_id", "seq").first()
    if orphan is not None:
        return Break(orphan.org_id, orphan.seq, orphan.pk, "the chain's head is missing")
    return None


def _verify_chain(head: AuditHead) -> Break | None:
    expected_seq, expected_prev = head.pruned_seq + 1, head.pruned_hash
    for entry in AuditEntry.objects.filter(org_id=head.org_id).order_by("seq").iterator(chunk_size=2000):
        if entry.seq != expected_seq:
            return Break(head.org_id, expected_seq, None, f"entry missing (next found is #{entry.seq})")
        if entry.prev_hash != expected_prev:
            return Break(head.org_id, entry.seq, entry.pk, "prev_hash does not match the entry before it")
        if entry_hash(entry) != entry.hash:
            return Break(head.org_id, entry.seq, entry.pk, "its content does not match its hash (edited)")
        expected_seq, expected_prev = entry.seq + 1, entry.hash
    if expected_seq - 1 != head.seq or expected_prev != head.hash:
        return Break(head.org_id, expected_seq, None, f"entries up to #{head.seq} are missing from the end")
    return None


def archive_dir() -> Path:
    return Path(settings.VIBEBOX_AUDIT_ARCHIVE_DIR)


def prune(*, now=None, days: int | None = None) -> dict[str, int]:
    """Retention: every organization's entries older than VIBEBOX_AUDIT_RETENTION_DAYS are first
    written to an archive (gzipped JSON lines, one file per organization and run, fsynced), then
    removed; the head keeps where the chain now starts, so verify() still checks what is left.
    Returns {org_id: entries archived}."""
    days = settings.VIBEBOX_AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:  # 0: keep forever
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    done: dict[str, int] = {}
    org_ids = AuditEntry.objects.filter(created_at__lt=cutoff).values_list("org_id", flat=True).distinct()
    for org_id in sorted(set(org_ids)):
        done[org_id] = _prune_chain(org_id, cutoff)
    return done


def _prune_chain(org_id: str, cutoff) -> int:
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().get(org_id=org_id)
        # Only a run from the chain's start: an old entry after a newer one stays until that one goes.
        old = []
        for entry in AuditEntry.objects.filter(org_id=org_id).order_by("seq").iterator(chunk_size=2000):
            if entry.created_at >= cutoff:
                break
            old.append(entry)
        if not old:
            return 0
        first, last = old[0].seq, old[-1].seq
        folder = archive_dir() / (org_id or "platform")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{first:012d}-{last:012d}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as archive:
            for entry in old:
                archive.write(json.dumps({**content(entry), "hash": entry.hash}, ensure_ascii=False) + "\n")
        with open(path, "rb") as written:
            os.fsync(written.fileno())
        AuditEntry.objects.filter(org_id=org_id, seq__lte=last)._raw_delete(AuditEntry.objects.db)
        head.pruned_seq, head.pruned_hash = last, old[-1].hash
        head.save(update_fields=["pruned_seq", "pruned_hash"])
    return len(old)
