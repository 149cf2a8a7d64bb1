"""An organization's audit log as a download: JSON lines or CSV, streamed, each entry with its
`prev` and `hash` so a copy can be checked on its own. The REST API's export
(apps/orgs/api/audit.py) and the dashboard's audit page (apps/dashboard/audit.py) both answer with
`download`."""

import csv
import io
import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from .models import AuditEntry
from .services import content

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ["seq", "at", "actor", "actorUserId", "keyId", "source", "ip", "userAgent", "action",
              "targetType", "targetId", "changes", "prev", "hash"]  # fmt: skip
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


def jsonl_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps({**content(entry), "hash": entry.hash}, ensure_ascii=False) + "\n"


def csv_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for entry in entries:
        row = {**content(entry), "hash": entry.hash}
        row["changes"] = json.dumps(row["changes"], ensure_ascii=False, sort_keys=True)
        writer.writerow({field: row[field] for field in CSV_FIELDS})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def download(entries: QuerySet[AuditEntry], *, org_slug: str, kind: str) -> StreamingHttpResponse:
    """The filtered entries (apps/audit/selectors.entry_list), oldest first, as a streamed
    attachment `audit-<slug>.<kind>`; `kind` is one of FORMATS (the caller checks it)."""
    rows = entries.order_by("seq").iterator(chunk_size=1000)
    body = csv_lines(rows) if kind == "csv" else jsonl_lines(rows)
    response = StreamingHttpResponse(body, content_type=f"{MEDIA_TYPES[kind]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{org_slug}.{kind}"'
    return response
