"""Event delivery (apps/sandboxes/events.py): every event is kept for the log stream's backlog and
reaches the groups that listen, in publishing order; groups nobody listens to are skipped."""

import asyncio
import secrets

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.sandboxes import events


class _Sandbox:
    def __init__(self, sandbox_id: str, owner_id: int):
        self.id, self.owner_id = sandbox_id, owner_id


def _listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def _received(channel: str, count: int) -> list[str]:
    layer = get_channel_layer()

    async def receive():
        return await asyncio.wait_for(layer.receive(channel), timeout=10)

    return [async_to_sync(receive)()["event"]["type"] for _ in range(count)]


def _publish(sandbox, *types: str, capture) -> None:
    with capture(execute=True):
        for type_ in types:
            events.publish(sandbox=sandbox, type=type_, data={"n": type_})
    events.flush()


def test_listeners_get_events_in_order_and_unlistened_groups_keep_the_backlog(db, django_capture_on_commit_callbacks):
    # Fresh ids: the backlog in Redis outlives a test database.
    watched, quiet = _Sandbox(f"sbx_{secrets.token_hex(8)}", 9101), _Sandbox(f"sbx_{secrets.token_hex(8)}", 9102)
    feed = _listen(events.activity_group(watched.owner_id))
    stream = _listen(events.logs_group(watched.id))
    extra = _listen("evtest.extra")
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(5):
            events.publish(sandbox=watched, type=f"test.w{index}")
            events.publish(sandbox=quiet, type=f"test.q{index}")  # nobody listens to its groups
        events.publish(sandbox=watched, type="test.grouped", groups=("evtest.extra",))
    events.flush()
    expected = [f"test.w{index}" for index in range(5)] + ["test.grouped"]
    assert _received(feed, 6) == expected
    assert _received(stream, 6) == expected
    assert _received(extra, 1) == ["test.grouped"]
    # Skipped groups still have their backlog, and a listener that comes later gets what follows.
    assert [event["type"] for event in events.recent(quiet.id)] == [f"test.q{index}" for index in range(5)]
    late = _listen(events.logs_group(quiet.id))
    _publish(quiet, "test.late", capture=django_capture_on_commit_callbacks)
    assert _received(late, 1) == ["test.late"]
