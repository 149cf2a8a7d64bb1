"""Billing's API (docs/api.md#billing): usage and costs of a window grouped by sandbox, template,
day or resource; the usage records streamed as CSV or JSON lines; a sandbox's cost; the plans and
the organization's plan. Reading needs billing.read (a key: billing:read); changing the plan
billing.manage (billing:manage)."""

import csv
import io
import json
from datetime import UTC, datetime, time

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import BILLING_MANAGE, BILLING_READ
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .. import selectors, services
from .serializers import (
    CostsSerializer,
    OrgPlanSerializer,
    PlanChangeSerializer,
    PlanSerializer,
    SandboxCostSerializer,
    UsageSerializer,
)

READ = {"GET": [BILLING_READ]}
EXPORT_FORMATS = ("csv", "jsonl")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
BATCH = 1000  # usage records read at a time by an export

WINDOW = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATETIME,
        description="Start (inclusive): ISO 8601 with a zone, or a date (UTC midnight). "
        "Default: the start of the month of `to`.",
    ),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="End (exclusive); default now."),
]
GROUP_BY = OpenApiParameter(
    "groupBy", str, enum=list(selectors.GROUPINGS), default="resource", description="How to group the usage."
)


def _when(request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    value = None
    try:
        day = parse_date(raw) if len(raw) == 10 else None
        value = datetime.combine(day, time(0), tzinfo=UTC) if day is not None else parse_datetime(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise errors.InvalidBillingWindow(
            f"{name} is an ISO 8601 time with a zone (2026-12-01T00:00:00Z) or a date (2026-12-01).",
            details={"fields": {name: [{"message": "invalid time", "code": "invalid"}]}},
        )
    return value


def _window(request):
    return selectors.window(_when(request, "from"), _when(request, "to"))


def _group_by(request) -> str:
    group_by = request.query_params.get("groupBy", "resource")
    if group_by not in selectors.GROUPINGS:
        raise errors.UnknownGroupBy(details={"groupBy": group_by[:40], "allowed": list(selectors.GROUPINGS)})
    return group_by


class UsageView(APIView):
    required_scopes = READ

    @extend_schema(
        operation_id="billing_usage",
        parameters=[*WINDOW, GROUP_BY],
        responses={200: UsageSerializer, **error_responses(400)},
        description="What the organization used in the window (hours that start in it), in price units, per "
        "group and resource. Needs billing.read.",
    )
    def get(self, request):
        group_by, (start, end) = _group_by(request), _window(request)
        result = selectors.usage(actor=actor_of(request), start=start, end=end, group_by=group_by)
        return Response(UsageSerializer(result).data)


class CostsView(APIView):
    required_scopes = READ

    @extend_schema(
        operation_id="billing_costs",
        parameters=[*WINDOW, GROUP_BY],
        responses={200: CostsSerializer, **error_responses(400, 409)},
        description="What the window costs, per group and resource, with the plan's prorated fee and the line "
        "items (docs/billing.md, Plans and prices). Needs billing.read.",
    )
    def get(self, request):
        group_by, (start, end) = _group_by(request), _window(request)
        result = selectors.cost_breakdown(actor=actor_of(request), start=start, end=end, group_by=group_by)
        return Response(CostsSerializer(result).data)


def _csv_line(values: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, int) or value is None:
        return value
    return str(value)


async def _export_lines(org, start, end, kind: str):
    """Pulls BATCH records at a time, each pull its own keyset query on the request's thread and
    connection (under ASGI a sync iterator would be read whole first)."""
    pull = sync_to_async(selectors.export_batch)
    names = [name for name, _ in selectors.EXPORT_FIELDS]
    if kind == "csv":
        yield _csv_line(names)
    after = None
    while batch := await pull(org=org, start=start, end=end, after=after, size=BATCH):
        for row in batch:
            values = [_value(row[field]) for _, field in selectors.EXPORT_FIELDS]
            if kind == "csv":
                yield _csv_line(values)
            else:
                yield json.dumps(dict(zip(names, values, strict=True))) + "\n"
        after = (batch[-1]["hour"], batch[-1]["pk"])


class UsageExportView(APIView):
    required_scopes = READ

    def perform_content_negotiation(self, request, force=False):
        # `?format=` here is the export's, not DRF's renderer override.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="billing_usage_export",
        parameters=[*WINDOW, OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), default="csv")],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            **error_responses(400),
        },
        description="The window's hourly usage records (per sandbox and hour, in the records' own units: "
        "seconds, GiB-seconds, bytes, USD), oldest first, streamed. Needs billing.read.",
    )
    def get(self, request):
        kind = request.query_params.get("format", "csv")
        if kind not in EXPORT_FORMATS:
            raise errors.UnknownExportFormat(details={"format": kind[:40], "allowed": list(EXPORT_FORMATS)})
        start, end = _window(request)
        actor = actor_of(request)
        selectors.export_check(actor=actor)
        response = StreamingHttpResponse(
            _export_lines(actor.org, start, end, kind), content_type=f"{MEDIA_TYPES[kind]}; charset=utf-8"
        )
        stamp = f"{start:%Y%m%d}-{end:%Y%m%d}"
        response["Content-Disposition"] = f'attachment; filename="usage-{actor.org.slug}-{stamp}.{kind}"'
        return response


class SandboxCostView(APIView):
    required_scopes = READ

    @extend_schema(
        operation_id="sandboxes_cost",
        responses={200: SandboxCostSerializer},
        description="What the sandbox has cost since it was created, and what it costs per hour now. Needs "
        "billing.read (not sandboxes.read).",
    )
    def get(self, request, sandbox_id):
        return Response(SandboxCostSerializer(selectors.sandbox_cost(actor=actor_of(request), ref=sandbox_id)).data)


class PlanListView(APIView):
    required_scopes = READ

    @extend_schema(
        operation_id="billing_plans",
        responses=PlanSerializer(many=True),
        description="The plans an organization can choose, cheapest first: fee, unit prices, included amounts, limits.",
    )
    def get(self, request):
        return Response(PlanSerializer(selectors.plan_list(), many=True).data)


class OrgPlanView(APIView):
    required_scopes = {"GET": [BILLING_READ], "PUT": [BILLING_MANAGE]}

    @extend_schema(
        operation_id="billing_plan_retrieve",
        responses=OrgPlanSerializer,
        description="The organization's plan now, changes scheduled, its limits and the month to date. Needs "
        "billing.read.",
    )
    def get(self, request):
        return Response(OrgPlanSerializer(selectors.org_plan(actor=actor_of(request))).data)

    @extend_schema(
        operation_id="billing_plan_update",
        request=PlanChangeSerializer,
        responses={200: OrgPlanSerializer, **error_responses(404, 409)},
        description="Puts the organization on another plan from now or a later time (changes scheduled after it "
        "are dropped). Audited (billing.plan_changed). Needs billing.manage.",
    )
    def put(self, request):
        body = PlanChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = actor_of(request)
        services.plan_change(
            actor=actor, plan=body.validated_data["plan"], effective_from=body.validated_data.get("effectiveFrom")
        )
        return Response(OrgPlanSerializer(selectors.org_plan(actor=actor, now=timezone.now())).data)
