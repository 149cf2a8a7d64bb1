"""Every root query and every mutation of the schema, sent over HTTP to the real server process
(issue 27: "every query and mutation through a real HTTP client against the live server"), as an
outsider (a key of another organization with every scope) and as a read-only key of the owner's.
The documents are made from the schema itself, so a field added later is swept too. Whatever the
arguments: the owner's data never shows to the outsider, neither caller writes anything of the
owner's (no audit entry, no row changed), and nothing is an internal error. What each mutation does
for its rightful caller is tested field by field in test_mutations*.py."""

import secrets

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
    get_named_type,
    print_ast,
)
from graphql.utilities import ast_from_value

from apps.agents import runs as agent_runs
from apps.agents.models import AgentRun, AgentTask
from apps.audit.models import AuditEntry
from apps.graphql_api.schema import schema
from apps.keys.models import ApiKey
from apps.keys.scopes import ALL_SCOPES
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox
from tests.conftest import sandbox_row

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = schema._schema
READ_SCOPES = [scope for scope in ALL_SCOPES if scope.endswith(":read")]
# Writes that a read scope may make: a preview URL is a GET in REST (a signed token, nothing stored).
READ_WRITES = {"createPreviewUrl"}
SCALARS = {"Int": 1, "Long": 1, "Float": 1.0, "Boolean": False, "Duration": "60s", "Size": "1g", "JSON": "x"}


class Owner:
    """What the owner has, named by values no other caller could guess."""

    def __init__(self, user, templates):
        self.org = personal_org_ensure(user=user)
        self.sandbox = sandbox_row(user, templates["python-3"], name=f"sweep-{secrets.token_hex(6)}")
        user.email = f"owner-{secrets.token_hex(6)}@example.test"
        user.save(update_fields=["email"])
        self.email = user.email
        self.run = agent_runs.agent_run_create(
            owner=user, org=self.org, name=f"sweep-run-{secrets.token_hex(6)}", tasks=[{"name": "sweep-task"}]
        )
        self.task = AgentTask.objects.get(run=self.run)


# Arguments naming an object that is not a sandbox: (field, argument) -> the owner's object's id.
OWNED = {
    ("finishAgentRun", "id"): lambda owner: owner.run.pk,
    ("deleteAgentRun", "id"): lambda owner: owner.run.pk,
    ("addAgentTasks", "runId"): lambda owner: owner.run.pk,
    ("updateAgentTask", "runId"): lambda owner: owner.run.pk,
    ("updateAgentTask", "taskId"): lambda owner: owner.task.pk,
}


def _value(type_, name: str, owner: Owner):
    """A value of `type_` for an argument or input field called `name`: ids and names point at the
    owner's objects (what another caller must not reach), everything else is a plain valid value."""
    if isinstance(type_, GraphQLNonNull):
        return _value(type_.of_type, name, owner)
    if isinstance(type_, GraphQLList):
        return [_value(type_.of_type, name, owner)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values.values())).value
    if isinstance(type_, GraphQLInputObjectType):
        return {
            field_name: _value(field.type, field_name, owner)
            for field_name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        }
    if type_.name in SCALARS:
        return SCALARS[type_.name]
    if type_.name == "DateTime":
        return "2026-01-01T00:00:00Z"
    lowered = name.lower()
    if lowered in ("slug", "org", "organization"):
        return owner.org.slug
    if lowered == "name" or type_.name == "ID" or lowered.endswith("id"):
        return owner.sandbox.pk
    return "x"


def _selection(type_, depth: int = 0) -> str:
    """Every scalar field that needs no argument, one level of objects deep."""
    named = get_named_type(type_)
    if isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
        return ""
    if not isinstance(named, GraphQLObjectType) or depth >= 2:
        return "{ __typename }"
    parts = ["__typename"]
    for field_name, field in named.fields.items():
        if any(isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined for arg in field.args.values()):
            continue
        inner = get_named_type(field.type)
        if isinstance(inner, (GraphQLScalarType, GraphQLEnumType)):
            parts.append(field_name)
        elif depth == 0:
            parts.append(f"{field_name} {_selection(field.type, depth + 1)}")
    return "{ " + " ".join(parts) + " }"


def _document(kind: str, field_name: str, field, owner: Owner) -> str:
    args = []
    for arg_name, arg in field.args.items():
        if isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined:
            given = OWNED.get((field_name, arg_name))
            value = given(owner) if given is not None else _value(arg.type, arg_name, owner)
            literal = ast_from_value(value, arg.type)
            assert literal is not None, (field_name, arg_name)
            args.append(f"{arg_name}: {print_ast(literal)}")
    call = f"{field_name}({', '.join(args)})" if args else field_name
    return f"{kind} {{ {call} {_selection(field.type)} }}"


def _documents(owner: Owner) -> list[tuple[str, str, str]]:
    return [
        (kind, field_name, _document(kind, field_name, field, owner))
        for kind, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type))
        for field_name, field in root.fields.items()
    ]


def _owners_state(owner: Owner, *, status: bool = True) -> tuple:
    """What a write of the owner's would change. `status`: with the sandbox's status, which the
    owner's own reads may change (the row has no container: a read that asks the engine finds it
    gone and marks it `error`, as the reconciler would)."""
    sandbox = Sandbox.objects.get(pk=owner.sandbox.pk)
    return (
        AuditEntry.objects.filter(org_id=owner.org.pk).count(),
        (sandbox.name, sandbox.metadata, sandbox.timeout_seconds, sandbox.auto_pause_seconds),
        sandbox.status if status else None,
        ApiKey.objects.filter(org=owner.org, revoked_at__isnull=True).count(),
        list(AgentRun.objects.filter(org=owner.org).values_list("pk", "status", "finished_at")),
        list(
            AgentTask.objects.filter(run__org=owner.org).values_list("pk", "status", "attempts", "sandbox_id", "error")
        ),
    )


def _send(client: httpx.Client, document: str) -> dict:
    response = client.post("/graphql", json={"query": document})
    assert response.status_code < 500, (document, response.text[:500])
    body = response.json()
    codes = [error.get("extensions", {}).get("code") for error in body.get("errors") or []]
    assert "internal_error" not in codes, (document, body)
    return body


def test_every_field_over_http_leaks_and_writes_nothing_of_the_owners(
    graphql_live_server, owner, outsider, make_key, templates
):
    mine = Owner(owner, templates)
    documents = _documents(mine)
    assert len([d for d in documents if d[0] == "mutation"]) == len(SCHEMA.mutation_type.fields) > 50
    mutations = SCHEMA.mutation_type.fields
    assert all(field in mutations and arg in mutations[field].args for field, arg in OWNED), OWNED  # none renamed
    _key, outsider_secret = make_key(outsider, ALL_SCOPES, rate_limit="1000000/s")
    _key, reader_secret = make_key(owner, READ_SCOPES, rate_limit="1000000/s")
    before = _owners_state(mine)

    with httpx.Client(
        base_url=graphql_live_server, headers={"Authorization": f"Bearer {outsider_secret}"}, timeout=60
    ) as client:
        for _kind, _field, document in documents:
            text = str(_send(client, document))
            assert mine.sandbox.name not in text and mine.email not in text, (document, text[:500])
            assert mine.run.name not in text, (document, text[:500])

    assert _owners_state(mine) == before
    before = _owners_state(mine, status=False)

    with httpx.Client(
        base_url=graphql_live_server, headers={"Authorization": f"Bearer {reader_secret}"}, timeout=60
    ) as client:
        for kind, field_name, document in documents:
            body = _send(client, document)
            if kind == "mutation" and field_name not in READ_WRITES:
                assert (body.get("data") or {}).get(field_name) is None, (document, body)
                codes = {error["extensions"]["code"] for error in body["errors"]}
                assert codes & {"insufficient_scope", "permission_denied"}, (document, body)

    assert _owners_state(mine, status=False) == before
