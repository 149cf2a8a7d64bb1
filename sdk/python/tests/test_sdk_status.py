"""The platform's status through the SDK: component health for any caller, SLOs for staff."""

from __future__ import annotations

import asyncio

import pytest
from common import LiveServer
from vibebox_sdk import AsyncVibeBox, PermissionDeniedError, VibeBox


def test_status_and_slos(vb: VibeBox, server: LiveServer, outsider_key: str) -> None:
    with VibeBox(api_key=outsider_key, base_url=server.url) as outsider:
        health = outsider.status()
        assert health["status"] in ("ok", "degraded", "down") and health["checked_at"]
        components = {item["name"]: item for item in health["components"]}
        assert set(components) == {"api", "engine", "redis", "workers", "gateway", "pools"}
        assert components["api"]["status"] == components["engine"]["status"] == "ok"
        with pytest.raises(PermissionDeniedError):
            outsider.slo()  # not staff

    report = vb.slo()  # the session's key is a staff user's
    slos = {item["name"]: item for item in report["slos"]}
    assert set(slos) == {"api_availability", "create_latency", "exec_latency", "webhook_delivery"}
    assert slos["api_availability"]["objective"] == 0.999 and set(slos["api_availability"]["burn_rates"]) == {
        "1h",
        "6h",
        "1d",
        "3d",
    }


def test_status_async(server: LiveServer) -> None:
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as client:
            assert {item["name"] for item in (await client.slo())["slos"]} >= {"api_availability"}
            assert (await client.status())["components"]

    asyncio.run(scenario())
