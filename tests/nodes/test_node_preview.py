"""Preview URLs of a sandbox placed on a node (docs/nodes.md, "Previews on a node"): its ports are
listed through sandboxd (through the node's relay), and the real preview proxy (VibeBox's ASGI app,
driven in this process: no server to start) reaches a port of it through the node's relay, for HTTP
and WebSockets. HTTP goes through the proxy's own transport (`_RelayTransport`, httpx's and
httpcore's public API only: an httpx upgrade that broke it fails here), whose requests in flight,
errors, replacement and forgetting are checked through the same relay. The relay opens any port on
the node's sandbox bridge, and refuses the node's own address there and any address off it.

The sandbox's server is preview_server.pl: the base image (all a node gets here) has perl, not
python."""

import asyncio
import base64
import dataclasses
import json
from collections.abc import Awaitable
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.preview import proxy
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.runtime.relay import RelayRefused, client_context, tunnel
from apps.sandboxes.runtime.sandboxd_client import Relayed
from apps.sandboxes.services import placement
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.nodes import node_prepare, node_ship_image
from apps.sandboxes.specs import network_name
from tests.nodes.engines import ENGINE_PORT, add_node, fill_local_engine, unprepare
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox.asgi import application
from vibebox.crypto import decrypt

pytestmark = pytest.mark.django_db(transaction=True)

SERVER = base64.b64encode((Path(__file__).parent / "preview_server.pl").read_bytes()).decode()
PORT = 3000
BODY = "hello from a sandbox on node-a"


@pytest.fixture
def on_node(docker_nodes, settings, owner):
    """A sandbox placed on node-a (prepared: sandboxd, its relay, the base image; the local engine
    made to look full) with preview_server.pl listening on PORT. The node is bare again afterwards."""
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    settings.VIBEBOX_POOL_ENABLED = False
    placement.placement_caches_clear()
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    template = Template.objects.create(name="on-node-preview", display_name="Preview on a node", image=base_image())
    node_ship_image(node=node, tag=base_image())
    node_prepare(node=node)
    node.refresh_from_db()
    fill_local_engine(template, count_used=True)
    sandbox = sandbox_create(owner=owner, template=template.name)
    try:
        yield engine, node, sandbox
    finally:
        sandbox_destroy(sandbox=sandbox)
        placement.placement_caches_clear()
        unprepare(engine)


def _get(client: httpx.AsyncClient, path: str, host: str, cookie: str = "") -> Awaitable[httpx.Response]:
    return client.get(path, headers={"Host": host, **({"Cookie": cookie} if cookie else {})})


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_a_preview_of_a_sandbox_on_a_node_goes_through_its_relay(
    on_node, api_client, docker_client, docker_nodes, monkeypatch
):
    engine, node, sandbox = on_node
    assert sandbox.node_id == node.pk and sandbox.status == "running"
    assert not docker_client.containers.list(all=True, filters={"name": f"^{sandbox.container_name}$"})
    exec_url = f"/api/v1/sandboxes/{sandbox.id}/exec"
    command = f"echo {SERVER} | base64 -d > /tmp/s.pl && exec perl /tmp/s.pl {PORT} '{BODY}'"
    started = api_client.post(exec_url, {"command": command, "background": True}, format="json")
    assert started.status_code == 202, started.content
    listens = f"until grep -q ':{PORT:04X} 00000000:0000 0A' /proc/net/tcp; do sleep 0.05; done"
    ready = api_client.post(exec_url, {"command": listens, "timeout": 60}, format="json")
    assert ready.json()["exitCode"] == 0, ready.content
    # Ports found through sandboxd, which the server reaches through the node's relay.
    ports = api_client.get(f"/api/v1/sandboxes/{sandbox.id}/ports").json()["ports"]
    assert (PORT, True) in [(p["port"], p["listening"]) for p in ports], ports
    host = f"{PORT}-{sandbox.id}.preview.localhost".lower()
    url = api_client.get(f"/api/v1/sandboxes/{sandbox.id}/ports/{PORT}/url").json()["url"]
    other = f"{PORT + 1}-{sandbox.id}.preview.localhost".lower()
    other_url = api_client.get(f"/api/v1/sandboxes/{sandbox.id}/ports/{PORT + 1}/url").json()["url"]
    relayed = get_driver(node).container_reach(sandbox.container_name)  # as admission hands it to the proxy
    assert isinstance(relayed, Relayed)
    address = relayed.host
    context = client_context(ca=node.relay_ca, cert=node.relay_cert, key=decrypt(node.relay_key))
    gateway = json.loads(engine.docker("network", "inspect", network_name()))[0]["IPAM"]["Config"][0]["Gateway"]

    async def through_the_transport():
        """The proxy's HTTP to a node, as it holds it: an httpx client per loop and node over
        `_RelayTransport`, whose requests in flight decide when an unused client may be closed."""
        loop = id(asyncio.get_running_loop())
        used = [held for (on, _), held in proxy._relay_clients.items() if on == loop]
        assert len(used) == 1 and isinstance(used[0].transport, proxy._RelayTransport)
        assert not used[0].transport.busy()  # the pages' responses were closed
        client = proxy._relay_client(relayed)
        held = proxy._relay_clients[(loop, relayed.node)]
        unused = proxy.RELAY_CLIENT_UNUSED
        async with client.stream("GET", f"http://{address}:{PORT}/streamed") as response:
            assert response.status_code == 200 and held.transport.busy()
            monkeypatch.setattr(proxy, "RELAY_CLIENT_UNUSED", -1.0)  # every client counts as unused
            assert proxy._relay_client(relayed) is client  # but this one is busy: kept
            assert (await response.aread()).decode() == BODY
        assert not held.transport.busy()
        # httpcore's errors as the httpx ones relay_http answers: the relay's 502 (nothing accepts
        # there) a connect error, its 403 (the node's own address) a proxy error.
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://{address}:{PORT + 1}/")
        with pytest.raises(httpx.ProxyError):
            await client.get(f"http://{gateway}:{PORT}/")
        assert not held.transport.busy()
        fresh = proxy._relay_client(relayed)  # idle and unused: closed and forgotten, a new one made
        await asyncio.gather(*proxy._closing)
        assert fresh is not client and client.is_closed
        monkeypatch.setattr(proxy, "RELAY_CLIENT_UNUSED", unused)
        # Another TLS context for the node (a rotation) while a response streams: a new client; the
        # one it replaces finishes that response and is closed once idle.
        async with fresh.stream("GET", f"http://{address}:{PORT}/streamed") as response:
            rotated = proxy._relay_client(dataclasses.replace(relayed, context=context))
            assert rotated is not fresh
            await asyncio.sleep(proxy.RETIRE_AFTER + 1)  # past the hand-out grace: still streaming
            assert not fresh.is_closed
            assert (await response.aread()).decode() == BODY
        await asyncio.gather(*proxy._closing)
        assert fresh.is_closed
        # Another one again with nothing in flight: the one it replaces closed when idle.
        again = proxy._relay_client(
            dataclasses.replace(
                relayed, context=client_context(ca=node.relay_ca, cert=node.relay_cert, key=decrypt(node.relay_key))
            )
        )
        await asyncio.gather(*proxy._closing)
        assert again is not rotated and rotated.is_closed
        page = await again.get(f"http://{address}:{PORT}/")
        assert page.status_code == 200 and page.text == BODY
        await again.aclose()

    async def through_the_preview_proxy():
        """VibeBox's ASGI app (the preview router and proxy in front of Django), in this process."""
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as client:
            first = await _get(client, _path(url), host)
            assert first.status_code == 302, first.text
            cookie = first.headers["set-cookie"].split(";", 1)[0]
            page = await _get(client, "/", host, cookie)
            assert page.status_code == 200 and page.text == BODY, page.text
            again = await _get(client, "/again", host, cookie)
            assert again.status_code == 200 and again.text == BODY  # a second tunnel (the first one closed)

            # A port where nothing listens: admission asks sandboxd (through the relay) and refuses.
            other_cookie = (await _get(client, _path(other_url), other)).headers["set-cookie"].split(";", 1)[0]
            refused = await _get(client, "/", other, other_cookie)
            assert refused.status_code == 502 and refused.headers["x-vibebox-preview-error"] == "port_not_listening"

        ws = Communicator(application, "/ws", headers=[(b"host", host.encode()), (b"cookie", cookie.encode())])
        connected, _ = await ws.connect()
        assert connected
        await ws.send_to(text_data="hello through the relay")
        assert await ws.receive_from() == "hello through the relay"
        await ws.send_to(bytes_data=b"\x00\x01\xff" * 100)
        assert await ws.receive_from() == b"\x00\x01\xff" * 100
        await ws.disconnect()
        await through_the_transport()

    async_to_sync(through_the_preview_proxy)()

    # Those went through the node's relay (its log has a line per tunnel, when it ends): the two
    # pages, the WebSocket, and the transport's stream and page (the server closes each connection).
    def tunnels() -> bool:
        return engine.docker("logs", "vibebox-relay").count(f"-> {address}:{PORT}:") >= 5

    wait_for(tunnels, what="the relay's lines for the preview's tunnels")

    # The relay's rule: any port on the node's sandbox bridge, never the node's own address there
    # (the bridge's gateway: the node's engine listens on it), nothing off the bridge.
    relay = json.loads(engine.docker("inspect", "vibebox-relay"))[0]["Args"]
    assert relay[relay.index("--ports") + 1] == "1-65535"
    where = (engine.address, node.relay_port)
    with tunnel(where, (address, PORT), context=context, timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(BODY.encode())
    refusals = {
        (gateway, ENGINE_PORT): "is an address of the relay's host",
        (gateway, PORT): "is an address of the relay's host",
        (docker_nodes[1].address, ENGINE_PORT): "is not in a network the relay opens",
        (engine.address, ENGINE_PORT): "is not in a network the relay opens",
        (address, 0): "port 0 is not one the relay opens",
    }
    for target, reason in refusals.items():
        with pytest.raises(RelayRefused) as refused:
            tunnel(where, target, context=context, timeout=10)
        assert refused.value.status == 403 and reason in refused.value.message, (target, refused.value)
