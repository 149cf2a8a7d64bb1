"""The webhooks' receiver and endpoint fixtures, for the Redis drill (tests/ha/test_drills.py)."""

from tests.webhooks.conftest import hook, receiver  # noqa: F401 (fixtures)
