"""Egress policies through the SDK (docs/api.md, "Network policy")."""

from __future__ import annotations

import asyncio

import pytest
from vibebox_sdk import AsyncVibeBox, ValidationError, VibeBox


def test_network_at_create_get_and_set(vb: VibeBox):
    box = vb.create("python-3", auto_start=False, network={"internet": False, "allow": ["pypi.org"]})
    try:
        assert box.info.network == {"internet": False, "allow": ["pypi.org"], "deny": [], "proxied": True}
        assert box.get_network()["allow"] == ["pypi.org"]
        policy = box.set_network(deny=["*.example.com"], internet=True)
        assert policy == {"internet": True, "allow": ["pypi.org"], "deny": ["*.example.com"], "proxied": True}
        assert box.refresh().info.network == policy
        with pytest.raises(ValidationError) as caught:
            box.set_network(allow=["not a name"])
        assert caught.value.code == "validation_error"
        assert box.get_network() == policy
    finally:
        box.destroy()


def test_network_async(server):
    async def main():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as client:
            box = await client.create("python-3", auto_start=False)
            try:
                assert (await box.get_network())["internet"] is True
                assert (await box.set_network(internet=False))["proxied"] is True
            finally:
                await box.destroy()

    asyncio.run(main())
