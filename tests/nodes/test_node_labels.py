"""Node labels required by templates, organizations and snapshots, and kept on the sandbox
(docs/nodes.md, "Placement"), against the real database and the real local engine. No nested
engine: the local engine's labels come from VIBEBOX_LOCAL_NODE_LABELS, and a node that has labels
but cannot take sandboxes is a registered row that is not prepared (test_placement.py covers
placement on real nodes)."""

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEntry
from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.marketplace.spec import validate_spec
from apps.orgs import services as org_services
from apps.orgs.labels import labels_merge
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Node, PooledContainer, Sandbox, Snapshot, WarmPool
from apps.sandboxes.services import placement, pools
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.snapshots import snapshot_create, snapshot_delete, snapshot_restore
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_caches(settings):
    settings.VIBEBOX_DEFAULT_DISK = None
    settings.VIBEBOX_LOCAL_NODE_LABELS = {}
    placement.placement_caches_clear()
    yield
    placement.placement_caches_clear()


@pytest.fixture
def template(db):
    # The base image carries the label of images built here (vibebox.managed-image), as a template's does.
    return Template.objects.create(name="labelled", display_name="Labelled", image=base_image())


def _create(client, **body):
    return client.post("/api/v1/sandboxes", {"template": "labelled", "autoStart": False, **body}, format="json")


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status and response.json()["error"]["code"] == code, response.content
    return response.json()["error"]


def test_requirements_merge_and_a_key_asked_with_two_values_is_named():
    assert labels_merge(("request", {"region": "eu"}), ("template", {"gpu": "true"}), ("organization", None)) == {
        "region": "eu",
        "gpu": "true",
    }
    assert labels_merge(("request", {"gpu": "true"}), ("template", {"gpu": "true"})) == {"gpu": "true"}
    with pytest.raises(errors.NodeLabelsConflict) as refused:
        labels_merge(("request", {"gpu": "false", "a": "1"}), ("template", {"gpu": "true"}))
    assert refused.value.status == 400 and "'gpu'" in refused.value.message
    assert refused.value.details == {"key": "gpu", "values": {"request": "false", "template": "true"}}


def test_template_and_org_labels_merge_with_the_create_and_pools_claim_only_where_they_are(
    api_client, owner, template, settings
):
    settings.VIBEBOX_POOL_ENABLED = True
    settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False
    Template.objects.filter(pk=template.pk).update(node_labels={"gpu": "true"})
    org = personal_org_ensure(user=owner)  # the key's organization
    org_services.org_update(org=org, node_labels={"dedicated": "acme"})
    shown = api_client.get("/api/v1/templates/labelled").json()
    assert shown["nodeLabels"] == {"gpu": "true"}

    # A pooled container on the local engine, which has not the labels yet.
    pool = WarmPool.objects.create(
        template=template,
        cpu=settings.VIBEBOX_DEFAULT_CPU,
        memory=settings.VIBEBOX_DEFAULT_MEMORY,
        min_size=1,
        target_size=1,
        max_size=1,
    )
    try:
        assert pools.pool_fill(pool) == 1
        pooled = PooledContainer.objects.get(pool=pool, status=PooledContainer.Status.READY)
        rows = Sandbox.objects.count()

        # The local engine has not them: 400 no_matching_node naming the merged requirement; the pool untouched.
        error = _error(_create(api_client, autoStart=True), 400, "no_matching_node")
        assert error["details"] == {"nodeLabels": {"gpu": "true", "dedicated": "acme"}}
        # One key asked with two values: 400 node_labels_conflict naming it and who asked for what.
        error = _error(_create(api_client, nodeLabels={"gpu": "false"}), 400, "node_labels_conflict")
        assert error["details"] == {"key": "gpu", "values": {"request": "false", "template": "true"}}
        error = _error(_create(api_client, nodeLabels={"dedicated": "other"}), 400, "node_labels_conflict")
        assert error["details"] == {"key": "dedicated", "values": {"request": "other", "organization": "acme"}}
        # Only a node that cannot take sandboxes now (not prepared) has them: 503 no_capacity, nothing claimed.
        Node.objects.create(
            name="gpu-node",
            docker_url="tcp://127.0.0.1:1",  # nothing listens there: placement must not dial it
            tls_ca="",
            tls_cert="",
            tls_key="",
            labels={"gpu": "true", "dedicated": "acme", "region": "eu"},
        )
        _error(_create(api_client, autoStart=True, nodeLabels={"region": "eu"}), 503, "no_capacity")
        assert Sandbox.objects.count() == rows
        assert PooledContainer.objects.filter(pk=pooled.pk, status=PooledContainer.Status.READY).exists()
        assert WarmPool.objects.filter(pk=pool.pk, hits=0, misses=0).exists()

        # The local engine has them all: the create takes its pooled container, and keeps the labels.
        settings.VIBEBOX_LOCAL_NODE_LABELS = {"gpu": "true", "dedicated": "acme", "region": "eu"}
        response = _create(api_client, autoStart=True, nodeLabels={"region": "eu"})
        assert response.status_code == 201, response.content
        body = response.json()
        merged = {"region": "eu", "gpu": "true", "dedicated": "acme"}
        assert body["warm"] is True and body["id"] == pooled.pk and body["nodeLabels"] == merged
        sandbox = Sandbox.objects.get(pk=body["id"])
        try:
            assert sandbox.node_id is None and sandbox.node_labels == merged
            assert api_client.get(f"/api/v1/sandboxes/{sandbox.pk}").json()["nodeLabels"] == merged
            query = "query($id: ID!) { sandbox(id: $id) { nodeLabels } }"
            answer = api_client.post("/graphql", {"query": query, "variables": {"id": sandbox.pk}}, format="json")
            assert answer.json() == {"data": {"sandbox": {"nodeLabels": merged}}}
            created = AuditEntry.objects.get(action="sandbox.created", target_id=sandbox.pk)
            assert created.changes["nodeLabels"] == merged
        finally:
            sandbox_destroy(sandbox=sandbox)
    finally:
        pools.pool_drain()


def test_org_labels_are_set_by_org_manage_checked_and_audited(owner, outsider, client_for, make_key):
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    developer = get_user_model().objects.create_user(username="dev", password="pw-dev")
    org_services.member_add(org=org, user_ref="dev", role="developer")
    owner_client = client_for(owner, org=org)
    answer = owner_client.patch("/api/v1/orgs/acme", {"nodeLabels": {"dedicated": "acme"}}, format="json")
    assert answer.status_code == 200 and answer.json()["nodeLabels"] == {"dedicated": "acme"}, answer.content
    entry = AuditEntry.objects.filter(action="org.updated").latest("pk")
    assert entry.changes == {"node_labels": [{}, {"dedicated": "acme"}]}
    # Checked: nothing changed by a bad one.
    _error(
        owner_client.patch("/api/v1/orgs/acme", {"nodeLabels": {"Bad Key": "x"}}, format="json"),
        400,
        "validation_error",
    )
    # org.manage only: a developer's is a 403, another organization's user a 404.
    refused = client_for(developer, org=org).patch("/api/v1/orgs/acme", {"nodeLabels": {}}, format="json")
    assert _error(refused, 403, "permission_denied")["details"]["permission"] == "org.manage"
    assert client_for(outsider).patch("/api/v1/orgs/acme", {"nodeLabels": {}}, format="json").status_code == 404
    org.refresh_from_db()
    assert org.node_labels == {"dedicated": "acme"}
    # GraphQL: the same service; {} clears them.
    mutation = 'mutation { updateOrganization(slug: "acme", input: {nodeLabels: {}}) { nodeLabels } }'
    answer = owner_client.post("/graphql", {"query": mutation}, format="json")
    assert answer.json() == {"data": {"updateOrganization": {"nodeLabels": {}}}}, answer.content
    org.refresh_from_db()
    assert org.node_labels == {}


def test_a_templates_node_labels_are_checked_in_its_template_yaml(owner):
    org = personal_org_ensure(user=owner)
    text = 'name: gpu-spec\nversion: "1.0.0"\ndescription: x\nsmoke: "true"\n'
    spec = validate_spec(text + "nodeLabels: {gpu: 'true'}\n", org=org, visibility="private")
    assert spec["nodeLabels"] == {"gpu": "true"}
    with pytest.raises(errors.InvalidTemplateYaml) as caught:
        validate_spec(text + "nodeLabels: {GPU: yes please}\n", org=org, visibility="private")
    assert "nodeLabels" in caught.value.details["fields"]


def test_a_snapshot_keeps_its_sandbox_labels_and_creates_and_restores_from_it_honour_them(
    api_client, owner, template, settings
):
    settings.VIBEBOX_LOCAL_NODE_LABELS = {"region": "eu"}
    source = sandbox_create(owner=owner, template="labelled", auto_start=False, node_labels={"region": "eu"})
    target = sandbox_create(owner=owner, template="labelled", auto_start=False)
    made = [source, target]
    snapshot = None
    try:
        snapshot = snapshot_create(sandbox=source)
        assert Snapshot.objects.get(pk=snapshot.pk).node_labels == {"region": "eu"}
        assert api_client.get(f"/api/v1/snapshots/{snapshot.pk}").json()["nodeLabels"] == {"region": "eu"}
        rows = Sandbox.objects.count()

        # Its labels bind a create from it: asked otherwise, 400 node_labels_conflict.
        error = _error(
            _create(api_client, snapshot=snapshot.pk, nodeLabels={"region": "us"}), 400, "node_labels_conflict"
        )
        assert error["details"]["values"] == {"request": "us", "snapshot": "eu"}
        # No engine has them any more: a create and a restore from it are 400 no_matching_node, nothing made.
        settings.VIBEBOX_LOCAL_NODE_LABELS = {}
        _error(_create(api_client, snapshot=snapshot.pk), 400, "no_matching_node")
        with pytest.raises(errors.NoMatchingNode):
            snapshot_restore(sandbox=target, snapshot=snapshot)
        assert Sandbox.objects.count() == rows and Sandbox.objects.get(pk=target.pk).status == "stopped"

        settings.VIBEBOX_LOCAL_NODE_LABELS = {"region": "eu"}
        response = _create(api_client, snapshot=snapshot.pk)
        assert response.status_code == 201, response.content
        made.append(Sandbox.objects.get(pk=response.json()["id"]))
        assert response.json()["nodeLabels"] == {"region": "eu"}
        # A restore into a sandbox without labels: it keeps the snapshot's from then on.
        restored = snapshot_restore(sandbox=target, snapshot=snapshot)
        assert restored.status == "stopped" and Sandbox.objects.get(pk=target.pk).node_labels == {"region": "eu"}
    finally:
        for sandbox in made:
            sandbox_destroy(sandbox=Sandbox.objects.get(pk=sandbox.pk))
        if snapshot is not None:
            snapshot_delete(snapshot=snapshot)
