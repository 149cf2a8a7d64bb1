"""Settings for the test suite: the real engine and Redis, kept apart from a running server and
from other test sessions on the same engine.

Each session has its own instance label (tests/sessions.py): the sandboxes it makes carry
`vibebox.instance=<label>`, so they never touch (or get reconciled away by) the containers of a
VibeBox served on the same engine, nor another test run's.
"""

import os
import sys

from tests import sessions
from vibebox.settings import *  # noqa: F403


def _session_label() -> str:
    """VIBEBOX_TEST_INSTANCE=<short name> when given (and its worker number under xdist); else the
    label of the pytest that started this process (a server or command it runs); else, in a pytest
    session, a fresh label of its own."""
    explicit = os.environ.get("VIBEBOX_TEST_INSTANCE")
    if explicit:
        # Under pytest-xdist each worker is a session of its own: <name><worker number>.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        return explicit + worker.removeprefix("gw")
    inherited = os.environ.get(sessions.SESSION_ENV)
    if inherited and "pytest" not in sys.modules:
        return inherited
    label = sessions.new_label()
    os.environ[sessions.SESSION_ENV] = label
    return label


VIBEBOX_INSTANCE = _session_label()
CACHES["default"]["KEY_PREFIX"] = f"vibebox-{VIBEBOX_INSTANCE}"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"vibebox-{VIBEBOX_INSTANCE}"  # noqa: F405
if "TEST" in DATABASES["default"]:  # SQLite: a file per session  # noqa: F405
    DATABASES["default"]["TEST"]["NAME"] = str(DATA_DIR / f"{VIBEBOX_INSTANCE}.sqlite3")  # noqa: F405
else:  # a database server: a test database per session
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{VIBEBOX_INSTANCE}"}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
VIBEBOX_STOP_TIMEOUT = 1
VIBEBOX_DEFAULT_MEMORY = 256 * 1024**2
# Warm pools are tested on their own (tests/sandboxes/test_pools.py turns them on).
VIBEBOX_POOL_ENABLED = env_bool("VIBEBOX_POOL_ENABLED", False)  # noqa: F405
VIBEBOX_POOL_REFILL_AFTER_TAKE = env_bool("VIBEBOX_POOL_REFILL_AFTER_TAKE", False)  # noqa: F405
# Webhooks: tests talk only to loopback receivers over http (and never resolve fuzzed names), and
# a sender runs when a test calls it; tests/webhooks/test_webhooks_api.py turns the checks back on.
VIBEBOX_WEBHOOK_ALLOW_HTTP = env_bool("VIBEBOX_WEBHOOK_ALLOW_HTTP", True)  # noqa: F405
VIBEBOX_WEBHOOK_ALLOW_PRIVATE = env_bool("VIBEBOX_WEBHOOK_ALLOW_PRIVATE", True)  # noqa: F405
VIBEBOX_WEBHOOK_DISPATCH = env_bool("VIBEBOX_WEBHOOK_DISPATCH", False)  # noqa: F405
# Marketplace submissions: tests run the validation pipeline themselves (tests/marketplace/test_pipeline*.py).
VIBEBOX_TEMPLATE_PIPELINE_DISPATCH = env_bool("VIBEBOX_TEMPLATE_PIPELINE_DISPATCH", False)  # noqa: F405
# Billing: the suite makes dozens of sandboxes per user and runs them for minutes; the free plan's
# quotas (2 running sandboxes, a budget) are not what those tests test. Organizations without a
# plan are on `internal` (seeded, no prices, no limits); billing's tests assign plans explicitly.
VIBEBOX_DEFAULT_PLAN = env_str("VIBEBOX_DEFAULT_PLAN", "internal")  # noqa: F405
VIBEBOX_STRIPE_DISPATCH = env_bool("VIBEBOX_STRIPE_DISPATCH", False)  # noqa: F405  (tests push invoices themselves)
# A loaded CI machine answers slower than production's deadlines assume: the real engine and Redis
# must not read as down because a probe took a second (tests of a hang set shorter ones).
VIBEBOX_METRICS_PROBE_TIMEOUT = env_float("VIBEBOX_METRICS_PROBE_TIMEOUT", 5.0)  # noqa: F405
VIBEBOX_STATUS_CHECK_TIMEOUT = env_duration("VIBEBOX_STATUS_CHECK_TIMEOUT", "10s")  # noqa: F405
VIBEBOX_GIT_HOOK_DISPATCH = env_bool("VIBEBOX_GIT_HOOK_DISPATCH", False)  # noqa: F405
