"""Preview URLs through the Python SDK (sync and async) and the CLI, against the live server:
a `python3 -m http.server 3000` in a python-3 sandbox reached through the host and path forms."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from conftest import cli
from preview_helpers import SERVE, Browser, listening, wait_for
from vibebox_sdk import AsyncVibeBox, Sandbox, SandboxNotFoundError, ValidationError, VibeBox


def serve(sandbox: Sandbox, port: int = 3000) -> str:
    marker = f"preview-{uuid.uuid4().hex[:8]}"
    sandbox.exec(SERVE.format(marker=marker, port=port), background=True)
    wait_for(lambda: listening(sandbox.ports(), port), what=f"port {port} listening")
    return marker


def test_ports_links_and_public_flag(sandbox: Sandbox, server, outsider_key: str) -> None:
    marker = serve(sandbox)
    port = listening(sandbox.ports(), 3000)
    assert port is not None and not port.public
    assert port.url == sandbox.get_host(3000)
    assert port.url.lower().startswith(f"http://3000-{sandbox.id.lower()}.")
    assert port.path_url.endswith(f"/preview/{sandbox.id}/3000/")
    assert "vibebox_token" not in port.url

    # A signed link works in a browser: the token becomes the host's cookie, then the page.
    link = sandbox.preview_url(3000, expires_in="10m")
    assert link.port == 3000 and link.token and link.expires_at and "vibebox_token=" in link.url
    assert link.base_url == port.url
    browser = Browser()
    page = browser.get(link.url)
    assert (page.status_code, page.text.strip()) == (200, marker)
    assert browser.get(port.url).text.strip() == marker  # the cookie alone, afterwards

    path_link = sandbox.preview_url(3000, form="path")
    assert f"/preview/{sandbox.id}/3000/" in path_link.url and "vibebox_token=" in path_link.url
    assert Browser().get(path_link.url).text.strip() == marker

    # Private: no token, no page. Public: anyone.
    assert Browser().get(port.url).status_code in (401, 403)
    opened = sandbox.set_port_public(3000, True)
    assert (opened.port, opened.public) == (3000, True)
    assert next(p for p in sandbox.ports() if p.port == 3000).public
    assert Browser().get(port.url).text.strip() == marker
    assert sandbox.set_port_public(3000, False).public is False
    assert Browser().get(port.url).status_code in (401, 403)

    # Another user's key cannot see or open the sandbox's ports.
    with VibeBox(api_key=outsider_key, base_url=server.url) as other:
        stranger = Sandbox(other, sandbox.info)
        for attempt in (stranger.ports, lambda: stranger.preview_url(3000), lambda: stranger.set_port_public(3000)):
            with pytest.raises(SandboxNotFoundError):
                attempt()

    for bad in (0, 65536):
        with pytest.raises(ValidationError):
            sandbox.preview_url(bad)


def test_the_template_s_declared_port_is_listed_before_it_listens(sandbox: Sandbox) -> None:
    declared = {port.port: port for port in sandbox.ports() if port.declared}
    assert 8000 in declared  # python-3.13's template.yaml declares 8000 (Application port)
    assert not declared[8000].listening and declared[8000].description == "Application port"


def test_async_preview(server, vb: VibeBox) -> None:
    sync_box = vb.sandbox("python-3")
    try:
        marker = serve(sync_box, 3001)

        async def scenario() -> None:
            async with AsyncVibeBox(api_key=server.key, base_url=server.url) as avb:
                box = await avb.get(sync_box.id)
                port = listening(await box.ports(), 3001)
                assert port is not None
                assert await box.get_host(3001) == port.url
                link = await box.preview_url(3001, expires_in=600, form="host")
                assert Browser().get(link.url).text.strip() == marker
                assert (await box.set_port_public(3001, True)).public
                assert Browser().get(port.url).text.strip() == marker
                assert not (await box.set_port_public(3001, False)).public

        asyncio.run(scenario())
    finally:
        sync_box.destroy()


def test_cli_ports_and_open(cli_env: dict[str, str], sandbox: Sandbox) -> None:
    marker = serve(sandbox)
    listed = cli(cli_env, "ports", sandbox.name, "--json")
    assert listed.returncode == 0, listed.stderr
    ports = {item["port"]: item for item in json.loads(listed.stdout)["ports"]}
    assert ports[3000]["listening"] and ports[3000]["url"] and ports[3000]["pathUrl"]

    table = cli(cli_env, "ports", sandbox.name)
    assert table.returncode == 0 and "3000" in table.stdout and ports[3000]["url"] in table.stdout

    opened = cli(cli_env, "open", sandbox.name, "3000", "--print")
    assert opened.returncode == 0, opened.stderr
    url = opened.stdout.strip()
    assert "vibebox_token=" in url and url.lower().startswith(f"http://3000-{sandbox.id.lower()}.")
    assert Browser().get(url).text.strip() == marker

    as_json = cli(cli_env, "open", sandbox.name, "3000", "--json", "--path", "--expires-in", "5m")
    assert as_json.returncode == 0, as_json.stderr
    link = json.loads(as_json.stdout)
    assert f"/preview/{sandbox.id}/3000/" in link["url"] and link["token"] and link["expiresAt"]

    assert cli(cli_env, "open", sandbox.name, "0", "--print").returncode == 2
    assert cli(cli_env, "open", sandbox.name, "3000", "--print", "--expires-in", "soon").returncode == 2
    assert cli(cli_env, "ports", "no-such-sandbox-here").returncode == 3
