"""Settings for the test suite: the real engine and Redis, kept apart from a running server.

Sandboxes made by tests carry `vibebox.instance=test`, so they never touch (or get
reconciled away by) the containers of a VibeBox served on the same engine.
"""

from vibebox.settings import *  # noqa: F403

VIBEBOX_INSTANCE = "test"
CACHES["default"]["KEY_PREFIX"] = "vibebox-test"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "vibebox-test"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
VIBEBOX_STOP_TIMEOUT = 1
VIBEBOX_DEFAULT_MEMORY = 256 * 1024**2
# Warm pools are tested on their own (tests/sandboxes/test_pools.py turns them on).
VIBEBOX_POOL_ENABLED = env_bool("VIBEBOX_POOL_ENABLED", False)  # noqa: F405
VIBEBOX_POOL_REFILL_AFTER_TAKE = env_bool("VIBEBOX_POOL_REFILL_AFTER_TAKE", False)  # noqa: F405
