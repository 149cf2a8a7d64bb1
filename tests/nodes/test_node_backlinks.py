"""The server's services from a node's sandboxes, through back links (docs/nodes.md, "The server's
services from a node"): a prepared node's relay listens on its bridge's gateway at the model
gateway's and the egress proxy's ports; this side (backlinks.BackLinks, as `runegress` runs it)
keeps connections parked at the relay and serves what a sandbox sends there: the real model
gateway (in a thread, its upstream the local Anthropic stub) and the real egress proxy, which
knows the sandbox by (node, bridge address).

A sandbox whose policy goes through the egress proxy is placed on the node; through its
HTTPS_PROXY (the node's bridge gateway) a CONNECT to an allowed address of the nodes' LAN is
established and one to another is refused by its policy; a request with its gateway token reaches
the gateway, which calls the stub with the operator's key. A local sandbox at the same address with
an open policy is not taken for it. Targets are the test's own: node-2's
engine port and a listener of the test's own (test_node_egress.py's)."""

import asyncio
import threading

import pytest
import uvicorn
from django.conf import settings as django_settings
from django.utils import timezone

from apps.agents.models import ClaudeSetup
from apps.agents.setup import gateway_url, token_hash
from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.backlinks import BackLinks
from apps.sandboxes.egress import EgressProxy
from apps.sandboxes.models import Node, Sandbox
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import network, placement
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.nodes import node_prepare
from apps.sandboxes.specs import network_name
from tests import anthropic_stub
from tests.conftest import sandbox_row
from tests.nodes.engines import ENGINE_PORT, add_node, fill_local_engine, free_port, lan_listener, ship, unprepare
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway and the proxy read rows in threads

INSTANCE = django_settings.VIBEBOX_INSTANCE
TARGET = f"vibebox-{INSTANCE}-back-target"
OPERATOR_KEY = "sk-ant-operator-" + "b" * 24
TOKEN = "vbgw_" + "t" * 40  # a test's gateway token


@pytest.fixture
def target(docker_nodes, docker_client):
    """A listener of the test's own on the nodes' LAN."""
    with lan_listener(
        docker_client, network=f"vibebox-{INSTANCE}-nodes", host=41, name=TARGET, instance=INSTANCE
    ) as address:
        yield address


@pytest.fixture
def stub():
    found, server = anthropic_stub.start()
    yield found
    server.shutdown()


@pytest.fixture
def services(settings, stub):
    """The model gateway on loopback (uvicorn in a thread) and this side of the back links with an
    egress proxy (an event loop in a thread); yields the BackLinks."""
    settings.VIBEBOX_GATEWAY_PORT, settings.VIBEBOX_EGRESS_PROXY_PORT = free_port(), free_port()
    settings.VIBEBOX_ANTHROPIC_UPSTREAM, settings.VIBEBOX_ANTHROPIC_API_KEY = stub.url, OPERATOR_KEY
    settings.VIBEBOX_NODE_BACK_LINKS = 2
    from apps.agents.gateway.asgi import application  # sets tracing up: imported by this test only

    config = uvicorn.Config(application, host="127.0.0.1", port=settings.VIBEBOX_GATEWAY_PORT, lifespan="off",
                            log_config=None)  # fmt: skip
    gateway = uvicorn.Server(config)
    threading.Thread(target=gateway.run, daemon=True, name="test-gateway").start()
    wait_for(lambda: gateway.started, timeout=30, what="the model gateway")
    loop = asyncio.new_event_loop()
    links = BackLinks(EgressProxy(), gateway=("127.0.0.1", settings.VIBEBOX_GATEWAY_PORT))
    running = threading.Thread(target=loop.run_forever, daemon=True, name="test-backlinks")
    running.start()
    try:
        yield links, loop
    finally:
        asyncio.run_coroutine_threadsafe(links.aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        running.join(timeout=30)
        loop.close()
        gateway.should_exit = True


@pytest.fixture
def node_a(docker_nodes, target, services, settings):
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    settings.VIBEBOX_POOL_ENABLED = False
    settings.VIBEBOX_EGRESS_ALLOW_PRIVATE = [f"{target}/32", f"{docker_nodes[1].address}/32"]  # the proxy's check
    engine = docker_nodes[0]
    Template.objects.update(is_active=False)
    template = Template.objects.create(name="back-node", display_name="Back", image=base_image())
    node = add_node(engine, "node-a")
    ship(engine, template.image)
    node_prepare(node=node)  # its relay with --back, its bridge's INPUT open at those two ports
    node.refresh_from_db()
    placement.placement_caches_clear()
    fill_local_engine(template)
    links, loop = services
    asyncio.run_coroutine_threadsafe(links.refresh(), loop).result(timeout=30)  # its links parked from now
    yield node
    placement.placement_caches_clear()
    unprepare(engine)


def _sh(api_client, sandbox, command: str) -> str:
    answer = api_client.post(f"/api/v1/sandboxes/{sandbox.id}/exec", {"command": command}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["stdout"]


# A CONNECT through the sandbox's HTTPS_PROXY (bash only: the base image has no curl); prints the status line.
CONNECT = (
    "p=${{HTTPS_PROXY#http://}}; exec 3<>/dev/tcp/${{p%:*}}/${{p##*:}} && "
    "printf 'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n' >&3 && timeout 10 head -n 1 <&3"
)


def test_a_node_sandbox_reaches_the_egress_proxy_and_the_model_gateway(
    node_a, target, docker_nodes, services, stub, owner, api_client, settings
):
    links, loop = services
    policy = {"internet": False, "allow": [f"{target}/32"]}  # through the proxy: only the target
    sandbox = sandbox_create(owner=owner, template="back-node", network_policy=policy)
    try:
        assert sandbox.node_id == node_a.pk and sandbox.status == "running"
        node_gateway = get_driver(node_a).network_gateway(network_name())
        proxy = f"http://{node_gateway}:{django_settings.VIBEBOX_EGRESS_PROXY_PORT}"
        assert network.proxy_env(sandbox)["HTTPS_PROXY"] == proxy  # its bridge's gateway on the node

        # The egress proxy, through the node's relay and a back link, knows the sandbox (node, address):
        # a local sandbox at the same address (bridges may overlap), open and started later, is not it.
        address = Sandbox.objects.get(pk=sandbox.pk).network_address
        assert address
        twin = sandbox_row(owner, sandbox.template, name="twin", network_address=address, started_at=timezone.now())
        assert network.sandbox_by_address(address) == twin
        allowed = _sh(api_client, sandbox, CONNECT.format(target=f"{target}:{ENGINE_PORT}"))
        assert allowed.startswith("HTTP/1.1 200"), allowed
        refused = _sh(api_client, sandbox, CONNECT.format(target=f"{docker_nodes[1].address}:{ENGINE_PORT}"))
        assert refused.startswith("HTTP/1.1 403"), refused

        # The model gateway: its token is the sandbox's identity; the stub gets the operator's key.
        ClaudeSetup.objects.create(sandbox=sandbox, version="test", home="/root", token_hash=token_hash(TOKEN))
        base = gateway_url(sandbox)
        assert base == f"http://{node_gateway}:{django_settings.VIBEBOX_GATEWAY_PORT}"
        host, port = base.removeprefix("http://").split(":")
        request = (
            f"GET /v1/models HTTP/1.1\\r\\nHost: {host}\\r\\nx-api-key: {TOKEN}\\r\\nConnection: close\\r\\n\\r\\n"
        )
        answer = _sh(
            api_client, sandbox, f"exec 3<>/dev/tcp/{host}/{port} && printf '{request}' >&3 && timeout 10 cat <&3"
        )
        assert answer.startswith("HTTP/1.1 200"), answer
        calls = [r for r in stub.requests if r["path"] == "/v1/models"]
        assert calls and calls[-1]["headers"].get("x-api-key") == OPERATOR_KEY
        assert links.paired >= 3

        # Past the per-sandbox cap (VIBEBOX_EGRESS_PROXY_PER_SANDBOX, counted per node and address) a
        # gateway pairing is refused (0 here: the next one is past it) and the gateway never sees it.
        cap, settings.VIBEBOX_EGRESS_PROXY_PER_SANDBOX = settings.VIBEBOX_EGRESS_PROXY_PER_SANDBOX, 0
        seen = len(stub.requests)
        gateway_call = f"exec 3<>/dev/tcp/{host}/{port} && printf '{request}' >&3 && timeout 10 cat <&3"
        assert _sh(api_client, sandbox, gateway_call).startswith("HTTP/1.1 503")
        assert len(stub.requests) == seen
        settings.VIBEBOX_EGRESS_PROXY_PER_SANDBOX = cap

        # A draining node keeps its links (its running sandboxes keep the gateway); a down one loses them.
        Node.objects.filter(pk=node_a.pk).update(state=Node.State.DRAINING)
        asyncio.run_coroutine_threadsafe(links.refresh(), loop).result(timeout=30)
        assert node_a.pk in links.nodes
        assert _sh(api_client, sandbox, gateway_call).startswith("HTTP/1.1 200")
        Node.objects.filter(pk=node_a.pk).update(state=Node.State.DOWN)
        asyncio.run_coroutine_threadsafe(links.refresh(), loop).result(timeout=30)
        assert node_a.pk not in links.nodes
        Node.objects.filter(pk=node_a.pk).update(state=Node.State.HEALTHY)
    finally:
        sandbox_destroy(sandbox=sandbox)
