"""An organization's data as one download (the data-portability half of "retention and deletion",
docs/compliance.md): JSON lines, streamed, one row per line.

The first line describes the export; then, per model, every row that belongs to the organization:
the models with a foreign key to Organization (found through Django's app registry, so the apps
above orgs are covered without orgs importing them), the rows that point at those (executions of
its sandboxes, deliveries of its webhooks...), its members' user names and emails, and last its
audit log (with each entry's hashes, as apps/audit/export.py writes them). Secrets never leave: a
field that holds key material or a ciphertext is written as "[redacted]".
"""

import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import StreamingHttpResponse
from django.utils import timezone

from apps.audit.export import jsonl_lines
from apps.audit.models import AuditEntry
from apps.audit.services import MASK, _is_secret

from .models import Organization

FORMAT_VERSION = 1
BATCH = 500  # rows read at a time
HOPS = 4  # foreign keys between a row and its organization, at most
# Fields that hold key material or Fernet ciphertexts (vibebox/crypto.py), by name: the HMAC of an
# API key, a webhook's signing secret, kept git credentials, a caller's Anthropic key, the sandbox
# environment (values encrypted), the SSO client secret.
SECRET_FIELDS = {"key_hash", "secret", "auth", "upstream_key", "mcp_key", "env", "password", "client_secret"}


def _secret(name: str) -> bool:
    return name in SECRET_FIELDS or _is_secret(name) or name.endswith("_hash")


def _parent(model: type[models.Model], reachable: set) -> models.ForeignKey | None:
    """The foreign key that says whose a row is: one to Organization if the model has it, else
    the first declared (required before nullable) one to a model that belongs to an organization
    (an execution's sandbox, not its key; a sandbox's org, never its template's owner: a public
    template's users are other organizations)."""
    keys = [
        field
        for field in model._meta.concrete_fields
        if (field.many_to_one or field.one_to_one) and field.related_model not in (model, None)
    ]
    direct = [field for field in keys if field.related_model is Organization]
    if direct:
        return direct[0]
    keys.sort(key=lambda field: field.null)  # a required owner before an optional reference
    return next((field for field in keys if field.related_model in reachable), None)


def _paths() -> list[tuple[type[models.Model], str]]:
    """(model, lookup to the organization) for every concrete model whose rows belong to one,
    through its owning foreign keys (_parent), up to HOPS of them."""
    reachable = {Organization}
    for _ in range(HOPS):
        reachable |= {model for model in apps.get_models() if _parent(model, reachable) is not None}
    paths = []
    for model in apps.get_models():
        if model is Organization or model not in reachable:
            continue
        lookup, current = [], model
        while current is not Organization and len(lookup) <= HOPS:
            field = _parent(current, reachable)
            lookup.append(field.name)
            current = field.related_model
        if current is Organization:
            paths.append((model, "__".join(lookup)))
    return sorted(paths, key=lambda path: path[0]._meta.label_lower)


def _masked(name: str, value):
    """`value` without secrets: under a secret's name (at any depth of a JSON field, such as an MCP
    server's env or a sandbox's metadata) numbers stay (token counts are usage, not secrets) and any
    text or map goes."""
    if _secret(name) and value not in ("", None) and not isinstance(value, (int, float)):
        return MASK
    if isinstance(value, dict):
        return {key: _masked(str(key), item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked("", item) for item in value]
    return value


def _row(obj: models.Model) -> dict:
    data = serializers.serialize("python", [obj])[0]
    fields = {name: _masked(name, value) for name, value in data["fields"].items()}
    return {"model": data["model"], "pk": data["pk"], "fields": fields}


def _line(value: dict) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n"


def _batch(queryset, after) -> list:
    rows = queryset.order_by("pk")
    if after is not None:
        rows = rows.filter(pk__gt=after)
    return list(rows[:BATCH])


def _rows_lines(batch: list) -> Iterator[str]:
    for obj in batch:
        yield _line(_row(obj))


def _members(org: Organization) -> list[dict]:
    users = get_user_model().objects.filter(memberships__org=org).order_by("pk")
    return [
        {"model": "auth.user", "pk": user.pk, "fields": {"username": user.get_username(), "email": user.email}}
        for user in users
    ]


def _audit_batch(org_id: str, after: int) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(org_id=org_id, seq__gt=after).order_by("seq")[:BATCH])


async def _lines(org: Organization) -> AsyncIterator[str]:
    """Pulls BATCH rows at a time, each pull its own keyset query in the request's thread (as the
    audit export does: no cursor held open across the client's pace)."""
    header = {"export": {"version": FORMAT_VERSION, "org": org.pk, "slug": org.slug, "at": timezone.now()}}
    yield _line(header)
    yield _line(await sync_to_async(_row)(org))
    for user in await sync_to_async(_members)(org):
        yield _line(user)
    pull = sync_to_async(_batch)
    for model, lookup in await sync_to_async(_paths)():
        queryset = model._default_manager.filter(**{lookup: org})
        after = None
        while batch := await pull(queryset, after):
            for line in await sync_to_async(lambda rows: list(_rows_lines(rows)))(batch):
                yield line
            after = batch[-1].pk
    pull_audit = sync_to_async(_audit_batch)
    seq = 0
    while entries := await pull_audit(org.pk, seq):
        for line in jsonl_lines(entries):
            yield _line({"model": "audit.auditentry", "fields": json.loads(line)})
        seq = entries[-1].seq


def download(org: Organization) -> StreamingHttpResponse:
    """The organization's rows as a streamed attachment `export-<slug>.jsonl`."""
    response = StreamingHttpResponse(_lines(org), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="export-{org.slug}.jsonl"'
    return response
