"""Migrating a database made before organizations: every user gets a personal organization, and
every key, sandbox, snapshot and agent run lands in its owner's, with the same ids."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The last migrations before organizations.
BEFORE = [
    ("keys", "0003_apikeyusageflush"),
    ("sandboxes", "0009_restore_safety"),
    ("agents", "0002_agent_runs"),
    ("marketplace", "0004_template_build_state"),  # its later migrations need orgs
    ("billing", None),  # made after organizations: all of it needs them
]


@pytest.fixture
def executor(transactional_db):
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    yield executor
    executor.loader.build_graph()
    executor.migrate(latest)


def test_existing_rows_land_in_their_owners_personal_org(executor):
    changed = {app for app, _ in BEFORE} | {"orgs"}
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in changed]
    executor.migrate([*BEFORE, ("orgs", None)])
    old = executor.loader.project_state([*others, *(node for node in BEFORE if node[1])]).apps
    User = old.get_model("auth", "User")
    ann, other_ann, bob = (User.objects.create(username=name) for name in ("ann", "Ann", "bob"))
    Template = old.get_model("marketplace", "Template")
    template = Template.objects.create(name="old", display_name="Old", image="vibebox/old:1")
    ApiKey = old.get_model("keys", "ApiKey")
    key = ApiKey.objects.create(
        id="key_old", user=ann, name="k", key_hash="h" * 64, key_prefix="vb_live_", display="vb_live_x"
    )
    Sandbox = old.get_model("sandboxes", "Sandbox")
    sandbox = Sandbox.objects.create(
        id="sbx_old", owner=ann, api_key=key, name="s", template=template, image="i", cpu=1, memory=2**30
    )
    Sandbox.objects.create(id="sbx_bob", owner=bob, name="s", template=template, image="i", cpu=1, memory=2**30)
    old.get_model("sandboxes", "Execution").objects.create(id="exe_old", sandbox=sandbox, kind="exec")
    old.get_model("sandboxes", "Snapshot").objects.create(
        id="snap_old", owner=ann, sandbox=sandbox, template=template, image="i"
    )
    old.get_model("agents", "AgentRun").objects.create(id="run_old", owner=bob, name="r")

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from apps.agents.models import AgentRun
    from apps.keys.models import ApiKey as Key
    from apps.orgs.models import Membership, Organization
    from apps.sandboxes.models import Execution, Snapshot
    from apps.sandboxes.models import Sandbox as Box

    orgs = {org.personal_for.username: org for org in Organization.objects.select_related("personal_for")}
    assert {name: org.slug for name, org in orgs.items()} == {"ann": "ann", "Ann": "ann-2", "bob": "bob"}
    assert all(Membership.objects.get(org=org).role == "owner" for org in orgs.values())
    assert all(Membership.objects.get(org=org).user.username == name for name, org in orgs.items())
    assert Key.objects.get(pk="key_old").org == orgs["ann"]
    assert Box.objects.get(pk="sbx_old").org == orgs["ann"] and Box.objects.get(pk="sbx_bob").org == orgs["bob"]
    assert Snapshot.objects.get(pk="snap_old").org == orgs["ann"]
    assert AgentRun.objects.get(pk="run_old").org == orgs["bob"]
    assert Execution.objects.get(pk="exe_old").sandbox_id == "sbx_old"
    assert {user.pk for user in (ann, other_ann, bob)} == {org.personal_for_id for org in orgs.values()}
