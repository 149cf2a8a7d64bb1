"""An organization's audit log as a download: JSON lines or CSV, streamed, each entry with its
`prev` and `hash` so a copy can be checked on its own. The REST API's export
(apps/orgs/api/audit.py) and the dashboard's audit page (apps/dashboard/audit.py) both answer with
`download`."""

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable, Iterator

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from .models import AuditEntry
from .services import content

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ["seq", "at", "actor", "actorUserId", "keyId", "source", "ip", "userAgent", "action",
              "targetType", "targetId", "changes", "prev", "hash"]  # fmt: skip
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


BATCH = 1000  # entries read at a time


def jsonl_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps({**content(entry), "hash": entry.hash}, ensure_ascii=False) + "\n"


def csv_header() -> str:
    return ",".join(CSV_FIELDS) + "\r\n"


def csv_rows(entries: Iterable[AuditEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    for entry in entries:
        row = {**content(entry), "hash": entry.hash}
        row["changes"] = json.dumps(row["changes"], ensure_ascii=False, sort_keys=True)
        writer.writerow({field: row[field] for field in CSV_FIELDS})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _batch_after(entries: QuerySet[AuditEntry], seq: int) -> list[AuditEntry]:
    return list(entries.filter(seq__gt=seq).order_by("seq")[:BATCH])


async def _lines(entries: QuerySet[AuditEntry], kind: str) -> AsyncIterator[str]:
    """Under ASGI Django would read a sync iterator whole into memory first: this pulls BATCH
    entries at a time, each pull its own keyset query (no cursor held open
    across the client's pace)."""
    pull = sync_to_async(_batch_after)  # the request's own thread and database connection
    if kind == "csv":
        yield csv_header()
    after = 0
    while batch := await pull(entries, after):
        for line in csv_rows(batch) if kind == "csv" else jsonl_lines(batch):
            yield line
        after = batch[-1].seq


def download(entries: QuerySet[AuditEntry], *, org_slug: str, kind: str) -> StreamingHttpResponse:
    """The filtered entries (apps/audit/selectors.entry_list), oldest first, as a streamed
    attachment `audit-<slug>.<kind>`; `kind` is one of FORMATS (the caller checks it)."""
    response = StreamingHttpResponse(_lines(entries, kind), content_type=f"{MEDIA_TYPES[kind]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{org_slug}.{kind}"'
    return response
