"""Warm pools in the metrics: creates served from a pool are `source="warm"` with a pool hit, a
create that finds the pool empty is a miss and `cold`; vibebox_pool_ready follows the ready rows."""

from apps.sandboxes.services import pools
from tests.monitoring.test_metrics import scrape, value
from tests.sandboxes.test_pools import pool_settings, python_pool  # noqa: F401 (fixtures)


def test_warm_and_cold_creates_hits_and_misses(
    python_pool,  # noqa: F811
    settings,
    client,
    api_client,
    cleanup_sandbox_ids,
    django_capture_on_commit_callbacks,
):
    settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False  # the pool stays as the test leaves it
    settings.VIBEBOX_METRICS_SCRAPE_CACHE = 0
    template = python_pool.name
    before = scrape(client)
    assert pools.pool_fill(pools.pool_get(python_pool)) == 2
    assert value(scrape(client), "vibebox_pool_ready", template=template) == 2
    # Hits and misses count when the create's transaction commits: run the commit callbacks.
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
            assert response.status_code == 201, response.content
            cleanup_sandbox_ids.append(response.json()["id"])
    after = scrape(client)

    def added(name, **labels):
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert added("vibebox_pool_hits_total", template=template) == 2
    assert added("vibebox_pool_misses_total", template=template) == 1
    assert added("vibebox_sandbox_create_seconds_count", template=template, source="warm") == 2
    assert added("vibebox_sandbox_create_seconds_count", template=template, source="cold") == 1
    assert value(after, "vibebox_pool_ready", template=template) == 0
