"""`Query`: each field calls the selector its REST endpoint calls, with the same scope."""

import datetime as dt

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from apps.agents import runs
from apps.audit import selectors as audit_selectors
from apps.billing import selectors as billing_selectors
from apps.billing.api.serializers import UsageSerializer
from apps.keys import selectors as key_selectors
from apps.keys.api.serializers import ApiKeySerializer
from apps.keys.scopes import AUDIT_READ, BILLING_READ, KEYS_MANAGE, SANDBOXES_READ, TEMPLATES_READ, WEBHOOKS_MANAGE
from apps.marketplace import selectors as template_selectors
from apps.marketplace.api.serializers import CatalogueTemplateSerializer, TemplateSerializer
from apps.orgs.api.audit import AuditEntrySerializer
from apps.sandboxes import selectors as sandbox_selectors
from apps.webhooks import selectors as webhook_selectors
from apps.webhooks.api.serializers import WebhookSerializer
from vibebox import exceptions as errors

from . import types
from .relay import Connection, Node, from_global_id, paginate, pk_of, to_global_id
from .rest_types import answer, serializer_type

BillingUsage = serializer_type(
    UsageSerializer, "BillingUsage", "What an organization used in a window (GET /billing/usage)."
)


@strawberry.input(
    description="As REST's list filters: statuses (default: all but destroyed), template, name, metadata."
)
class SandboxFilter:
    status: list[types.SandboxStatus] | None = None
    template: str | None = None
    name: str | None = None
    metadata: JSON | None = strawberry.field(default=None, description='Exact values to match, e.g. {"team": "ml"}.')


def _sandbox(info: Info, ref: str) -> types.Sandbox:
    row = sandbox_selectors.sandbox_get(actor=info.context.actor, ref=ref)
    info.context.loaders.seen([row])
    return types.Sandbox.of(row)


def _node_sandbox(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    return _sandbox(info, pk)


def _node_execution(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    sandbox_id, _, execution_id = pk.partition("/")  # an execution's global id names its sandbox too
    sandbox = sandbox_selectors.sandbox_get(actor=info.context.actor, ref=sandbox_id) if sandbox_id else None
    if sandbox is None or not sandbox_id.startswith("sbx_"):
        raise errors.ExecutionNotFound(details={"executionId": execution_id or pk})
    return types.Execution.of(sandbox_selectors.execution_get(sandbox=sandbox, id=execution_id))


def _node_snapshot(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    return types.Snapshot.of(sandbox_selectors.snapshot_get(actor=info.context.actor, snapshot_id=pk))


def _node_organization(info: Info, pk: str):
    if pk != info.context.org.pk:  # only the one the request acts in, as REST scopes everything to it
        raise errors.OrgNotFound(details={"org": pk})
    return types.Organization.of(info.context.org)


def _template(data: dict) -> types.Template:
    return types.from_rest(types.Template, data, id=to_global_id("Template", data["name"]))


def _api_key(data: dict) -> types.ApiKey:
    return types.from_rest(types.ApiKey, data, id=to_global_id("ApiKey", data["id"]), key_id=data["id"])


def _webhook(row) -> types.Webhook:
    data = WebhookSerializer(row).data
    return types.from_rest(types.Webhook, data, id=to_global_id("Webhook", row.pk), webhook_id=row.pk, _row=row)


def _agent_run(row) -> types.AgentRun:
    return types.AgentRun.of(row)


def _node_template(info: Info, pk: str):
    info.context.require_scopes(TEMPLATES_READ)
    return _template(TemplateSerializer(template_selectors.template_get(name=pk, org=info.context.org)).data)


def _node_api_key(info: Info, pk: str):
    info.context.require_scopes(KEYS_MANAGE)
    key = key_selectors.api_key_get(user=info.context.user, id=pk, manager=info.context.actor)
    return _api_key(ApiKeySerializer(key).data)


def _node_webhook(info: Info, pk: str):
    info.context.require_scopes(WEBHOOKS_MANAGE)
    return _webhook(webhook_selectors.webhook_get(actor=info.context.actor, id=pk))


def _node_agent_run(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    return _agent_run(runs.agent_run_get(actor=info.context.actor, run_id=pk))


NODES = {
    "Sandbox": _node_sandbox,
    "Execution": _node_execution,
    "Snapshot": _node_snapshot,
    "Organization": _node_organization,
    "Template": _node_template,
    "ApiKey": _node_api_key,
    "Webhook": _node_webhook,
    "AgentRun": _node_agent_run,
}


@strawberry.type
class Query:
    @strawberry.field(description="Who is asking, and where.")
    def viewer(self, info: Info) -> types.Viewer:
        user = info.context.user
        return types.Viewer(username=user.get_username(), email=user.email or "")

    @strawberry.field(description="The organization the request acts in.")
    def organization(self, info: Info) -> types.Organization:
        return types.Organization.of(info.context.org)

    @strawberry.field(description="Any object by its global id; another organization's: null and a *_not_found error.")
    def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, pk = from_global_id(id)
        resolve = NODES.get(type_name)
        if resolve is None:
            raise errors.NotFound("No object has this id.", details={"id": str(id)})
        return resolve(info, pk)

    @strawberry.field(description="Sandboxes of the organization, newest first (REST: GET /sandboxes).")
    def sandboxes(
        self, info: Info, filter: SandboxFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[types.Sandbox] | None:
        info.context.require_scopes(SANDBOXES_READ)
        filter = filter or SandboxFilter()
        metadata = filter.metadata or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise errors.InvalidMetadata("filter.metadata is an object of strings.")
        rows = sandbox_selectors.sandbox_list(
            actor=info.context.actor,
            status=[status.value for status in filter.status] if filter.status else None,
            template=filter.template or None,
            name=filter.name or None,
            metadata=metadata,
        )
        return paginate(rows, first=first, after=after, wrap=types.Sandbox.of, on_page=info.context.loaders.seen)

    @strawberry.field(description="One sandbox by its global id, its REST id (sbx_…) or its name.")
    def sandbox(self, info: Info, id: strawberry.ID | None = None, name: str | None = None) -> types.Sandbox | None:
        info.context.require_scopes(SANDBOXES_READ)
        if (id is None) == (name is None):
            raise errors.ValidationFailed("Give either id or name.")
        if id is not None and not str(id).startswith("sbx_"):
            return _sandbox(info, pk_of(id, "Sandbox", errors.SandboxNotFound))
        return _sandbox(info, str(id) if id is not None else name)

    @strawberry.field(description="Templates you can start sandboxes from (REST: GET /templates).")
    def templates(self, info: Info) -> list[types.Template] | None:
        info.context.require_scopes(TEMPLATES_READ)
        rows = template_selectors.template_list(info.context.org)
        return [_template(data) for data in TemplateSerializer(rows, many=True).data]

    @strawberry.field(description="The marketplace catalogue (REST: GET /marketplace/templates), featured first.")
    def marketplace_templates(
        self, info: Info, q: str = "", first: int | None = None, after: str | None = None
    ) -> Connection[types.MarketplaceTemplate] | None:
        info.context.require_scopes(TEMPLATES_READ)
        rows = template_selectors.catalogue(org=info.context.org, q=q[:200])

        def wrap(row):
            data = CatalogueTemplateSerializer(row).data
            return types.from_rest(
                types.MarketplaceTemplate, data, id=to_global_id("MarketplaceTemplate", row.name), details=data
            )

        return paginate(rows, first=first, after=after, wrap=wrap)

    @strawberry.field(description="Your API keys; `all`: every member's (keys.manage) (REST: GET /keys).")
    def api_keys(self, info: Info, all: bool = False) -> list[types.ApiKey] | None:
        info.context.require_scopes(KEYS_MANAGE)
        context = info.context
        rows = key_selectors.api_key_list(user=context.user, everyone_in=context.actor if all else None)
        return [_api_key(data) for data in ApiKeySerializer(rows, many=True).data]

    @strawberry.field(description="The organization's webhooks (REST: GET /webhooks; webhooks.manage).")
    def webhooks(self, info: Info) -> list[types.Webhook] | None:
        info.context.require_scopes(WEBHOOKS_MANAGE)
        return [_webhook(row) for row in webhook_selectors.webhook_list(actor=info.context.actor)]

    @strawberry.field(description="The organization's audit log, newest first (REST: /orgs/{slug}/audit-log).")
    def audit_log(
        self,
        info: Info,
        action: str | None = None,
        target: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[types.AuditEntry] | None:
        info.context.require_scopes(AUDIT_READ)
        info.context.actor.require("audit.read")
        rows = audit_selectors.entry_list(org_id=info.context.org.pk, action=action, target=target)

        def wrap(row):
            return types.from_rest(types.AuditEntry, AuditEntrySerializer(row).data)

        return paginate(rows, first=first, after=after, wrap=wrap)

    @strawberry.field(description="Agent runs, newest first (REST: GET /agent-runs).")
    def agent_runs(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[types.AgentRun] | None:
        info.context.require_scopes(SANDBOXES_READ)
        rows = runs.agent_run_list(actor=info.context.actor)
        return paginate(rows, first=first, after=after, wrap=_agent_run, on_page=info.context.loaders.seen_runs)

    @strawberry.field(description="What the organization used in a window (REST: GET /billing/usage; billing.read).")
    def usage(
        self, info: Info, start: dt.datetime | None = None, end: dt.datetime | None = None, group_by: str = "resource"
    ) -> BillingUsage | None:
        info.context.require_scopes(BILLING_READ)
        if group_by not in billing_selectors.GROUPINGS:
            raise errors.UnknownGroupBy(
                details={"groupBy": group_by[:40], "allowed": list(billing_selectors.GROUPINGS)}
            )
        start, end = billing_selectors.window(start, end)
        result = billing_selectors.usage(actor=info.context.actor, start=start, end=end, group_by=group_by)
        return answer(BillingUsage, UsageSerializer, result)
