"""Settings for the test suite: the real engine and Redis, kept apart from a running server.

Sandboxes made by tests carry `vibebox.instance=test`, so they never touch (or get
reconciled away by) the containers of a VibeBox served on the same engine.
"""

from vibebox.settings import *  # noqa: F403

# VIBEBOX_TEST_INSTANCE=<short name> lets several test runs share one engine and Redis (each with
# its own containers, network, database and cache keys): the default "test" is what make test uses.
VIBEBOX_INSTANCE = env_str("VIBEBOX_TEST_INSTANCE", "test")  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = f"vibebox-{VIBEBOX_INSTANCE}"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"vibebox-{VIBEBOX_INSTANCE}"  # noqa: F405
if VIBEBOX_INSTANCE != "test" and "TEST" in DATABASES["default"]:  # noqa: F405
    DATABASES["default"]["TEST"]["NAME"] = str(DATA_DIR / f"{VIBEBOX_INSTANCE}.sqlite3")  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
VIBEBOX_STOP_TIMEOUT = 1
VIBEBOX_DEFAULT_MEMORY = 256 * 1024**2
# Warm pools are tested on their own (tests/sandboxes/test_pools.py turns them on).
VIBEBOX_POOL_ENABLED = env_bool("VIBEBOX_POOL_ENABLED", False)  # noqa: F405
VIBEBOX_POOL_REFILL_AFTER_TAKE = env_bool("VIBEBOX_POOL_REFILL_AFTER_TAKE", False)  # noqa: F405
