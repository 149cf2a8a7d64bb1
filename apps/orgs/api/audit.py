"""The audit log of an organization: `GET /orgs/{slug}/audit-log` (filters, cursor pages) and
`GET /orgs/{slug}/audit-log/export?format=csv|jsonl` (streamed, oldest first, with each entry's
hashes so a copy can be checked on its own). Both need the audit.read permission, and a key the
audit:read scope."""

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from apps.audit import selectors as audit_selectors
from apps.audit.export import FORMATS as EXPORT_FORMATS
from apps.audit.export import download
from vibebox import exceptions as errors

from .views import _org

# The keys app's scope (apps/keys/scopes.py lists it; keys sit above orgs, so it is named here).
AUDIT_READ = "audit:read"


class AuditEntrySerializer(serializers.Serializer):
    seq = serializers.IntegerField(help_text="The entry's number in its organization's chain.")
    createdAt = serializers.DateTimeField(source="created_at")
    actor = serializers.CharField(help_text='A username, "system" (tasks, commands) or "anonymous".')
    actorUserId = serializers.IntegerField(source="actor_user_id", allow_null=True)
    keyId = serializers.CharField(source="key_id", help_text="The API key used; empty for a signed-in session.")
    source = serializers.CharField(help_text="api, websocket, dashboard, admin, mcp or system.")
    ip = serializers.CharField()
    userAgent = serializers.CharField(source="user_agent")
    action = serializers.CharField()
    targetType = serializers.CharField(source="target_type")
    targetId = serializers.CharField(source="target_id")
    changes = serializers.DictField(help_text="What changed; never a secret's value.")
    prevHash = serializers.CharField(source="prev_hash")
    hash = serializers.CharField()


class AuditCursor(CursorPagination):
    """Newest first; `?limit=` 1 to 500; `next`/`previous` are links carrying an opaque cursor."""

    ordering = "-seq"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except Exception:  # DRF's NotFound: a cursor we did not make
            raise errors.ValidationFailed(
                "cursor is not one this server gave.",
                details={"fields": {"cursor": [{"message": "invalid cursor", "code": "invalid_cursor"}]}},
            ) from None

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise errors.ValidationFailed(
                f"limit is a whole number from 1 to {self.max_page_size}.",
                details={"fields": {"limit": [{"message": "out of range or not a number", "code": "invalid"}]}},
            )
        return int(raw)


def _when(request, name: str):
    raw = request.query_params.get(name)
    if raw is None:  # absent; given empty, it is no date-time (the schema says so): refused below
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise errors.ValidationFailed(
            f"{name} is an ISO 8601 time with a zone, e.g. 2026-12-01T00:00:00Z.",
            details={"fields": {name: [{"message": "invalid time", "code": "invalid"}]}},
        )
    return value


def _entries(request, slug: str):
    org = _org(request, slug, "audit.read")
    params = request.query_params
    return audit_selectors.entry_list(
        org_id=org.pk,
        actor=params.get("actor") or None,
        action=params.get("action") or None,
        target=params.get("target") or None,
        since=_when(request, "since"),
        until=_when(request, "until"),
    )


FILTERS = [
    OpenApiParameter("actor", str, description="A username or an API key id."),
    OpenApiParameter("action", str, description="Exact (`sandbox.created`) or a family (`sandbox.` or `sandbox.*`)."),
    OpenApiParameter("target", str, description="A target id, or `type:id` (`sandbox:sbx_…`)."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="From this time (inclusive)."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before this time."),
]


class AuditLogView(APIView):
    required_scopes = {"GET": [AUDIT_READ]}

    @extend_schema(
        operation_id="orgs_audit_log",
        parameters=[
            *FILTERS,
            OpenApiParameter("cursor", str),
            OpenApiParameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": AuditCursor.max_page_size,
                    "default": AuditCursor.page_size,
                },
            ),
        ],
        responses=inline_serializer(
            "AuditLogPage",
            {
                "next": serializers.URLField(allow_null=True, help_text="The next (older) page's link, or null."),
                "previous": serializers.URLField(allow_null=True),
                "results": AuditEntrySerializer(many=True),
            },
        ),
        description="The organization's audit log, newest first. Needs audit.read.",
    )
    def get(self, request, slug):
        paginator = AuditCursor()
        page = paginator.paginate_queryset(_entries(request, slug), request, view=self)
        return paginator.get_paginated_response(AuditEntrySerializer(page, many=True).data)


class AuditExportView(APIView):
    required_scopes = {"GET": [AUDIT_READ]}

    def perform_content_negotiation(self, request, force=False):
        # `?format=` here is the export's, not DRF's renderer override.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="orgs_audit_log_export",
        parameters=[*FILTERS, OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), default="jsonl")],
        responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY, (200, "text/csv"): OpenApiTypes.BINARY},
        description="The whole filtered log, oldest first, streamed as JSON lines or CSV. Needs audit.read.",
    )
    def get(self, request, slug):
        kind = request.query_params.get("format", "jsonl")
        if kind not in EXPORT_FORMATS:
            raise errors.ValidationFailed(
                "format is jsonl or csv.", details={"fields": {"format": [{"message": "unknown", "code": "invalid"}]}}
            )
        org = _org(request, slug, "audit.read")
        return download(_entries(request, slug), org_slug=org.slug, kind=kind)
