"""Injected engine faults at each step of create and start (issue 18): the step fails for real,
the answer is a clean error with a stable code, nothing is left half-made, nothing is lost.

The engine is broken through tests/faults.py's proxy, seen only by this test process."""

import pytest

from apps.sandboxes.runtime import get_driver
from vibebox import exceptions as errors

# ---- the fault tool itself ----


def test_proxy_passes_through_then_refuses_resets_and_restores(engine_fault):
    driver = get_driver()
    driver.ping()
    assert "GET /_ping" in engine_fault.requests
    engine_fault.refuse()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    engine_fault.restore()
    driver.ping()
    engine_fault.reset()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    engine_fault.restore()
    driver.ping()


def test_proxy_hang_fires_the_driver_timeout(engine_fault, settings):
    driver = get_driver()
    driver.ping()
    engine_fault.hang()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    engine_fault.restore()
    driver.ping()


def test_proxy_fails_exactly_the_nth_matching_request(engine_fault):
    driver = get_driver()
    tripped = engine_fault.fail_on(r"^GET /_ping$", nth=2)
    driver.ping()
    assert not tripped.is_set()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    assert tripped.is_set()
    driver.ping()  # then="pass": only that one failed
