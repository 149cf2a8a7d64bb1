"""VibeBox settings, read from the environment with safe single-machine defaults.

See docs/operations.md for every VIBEBOX_* variable.
"""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import (
    database_from_url,
    env_bool,
    env_cidrs,
    env_duration,
    env_durations,
    env_float,
    env_int,
    env_list,
    env_size,
    env_str,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("VIBEBOX_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = env_bool("VIBEBOX_PRODUCTION", False)
DEBUG = env_bool("VIBEBOX_DEBUG", False)


def _secret_key() -> str:
    key = env_str("VIBEBOX_SECRET_KEY") or env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("VIBEBOX_SECRET_KEY must be set when VIBEBOX_PRODUCTION=1")
    # Single-machine default: a random key kept in the data directory, so API key
    # hashes and sessions stay valid across restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# The API key HMAC secret; separate so SECRET_KEY can rotate without invalidating keys.
VIBEBOX_KEY_HASH_SECRET = env_str("VIBEBOX_KEY_HASH_SECRET") or SECRET_KEY

VIBEBOX_HOST = env_str("VIBEBOX_HOST", "127.0.0.1")
VIBEBOX_PORT = env_int("VIBEBOX_PORT", 8000)
ALLOWED_HOSTS = env_list("VIBEBOX_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
if VIBEBOX_HOST not in ALLOWED_HOSTS and VIBEBOX_HOST not in ("0.0.0.0", "::"):  # noqa: S104
    ALLOWED_HOSTS.append(VIBEBOX_HOST)
CSRF_TRUSTED_ORIGINS = env_list("VIBEBOX_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_htmx",
    # Single sign-on's OIDC and SAML (apps/sso, docs/sso.md); allauth's own account pages are not mounted.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "apps.audit",
    "apps.orgs",
    "apps.keys",
    "apps.sso",
    "apps.marketplace",
    "apps.sandboxes",
    "apps.billing",
    "apps.agents",
    "apps.webhooks",
    "apps.dashboard",
]

# Django's and the libraries' middleware, each marked sync-only (vibebox/middleware.py says why).
MIDDLEWARE = [
    "vibebox.middleware.RequestIdMiddleware",
    "vibebox.middleware.NulCharacterMiddleware",
    "vibebox.middleware.Security",
    "vibebox.middleware.WhiteNoise",
    "vibebox.middleware.Session",
    "vibebox.middleware.Common",
    "vibebox.middleware.Csrf",
    "vibebox.middleware.Authentication",
    "vibebox.middleware.AuditContextMiddleware",
    "allauth.account.middleware.AccountMiddleware",  # sync here: the middleware inside it is sync-only
    "vibebox.middleware.Message",
    "vibebox.middleware.XFrameOptions",
    "vibebox.middleware.Htmx",
]

ROOT_URLCONF = "vibebox.urls"
ASGI_APPLICATION = "vibebox.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.dashboard.navigation.menu",
                "apps.dashboard.navigation.brand",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {"default": sqlite_database(DATA_DIR / "vibebox.sqlite3")}
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("VIBEBOX_CACHE_PREFIX", "vibebox"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # No socket timeout: redis-py's default (5 s) equals channels_redis's blocking read and
        # made consumers crash under load.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": env_str("VIBEBOX_CACHE_PREFIX", "vibebox"),
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Webhook tasks (senders, their beat pass, pruning) have a queue and a worker of their own (the
# Procfile's `webhooks`, a thread pool): a slow endpoint holds one of its threads, never a slot of
# the `worker` that runs reconciliation and the warm pools (it consumes only the default queue).
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Image builds (the built-in templates' background builds, marketplace submissions' validation:
# minutes each) have theirs too (the Procfile's `builds`, VIBEBOX_BUILD_CONCURRENCY at a time).
CELERY_TASK_ROUTES = {
    "apps.webhooks.tasks.*": {"queue": "webhooks"},
    "apps.sandboxes.tasks.build_templates": {"queue": "builds"},
    "apps.sandboxes.tasks.validate_submission": {"queue": "builds"},
    "apps.sandboxes.tasks.ship_image": {"queue": "builds"},  # nodes: images streamed to a node (docs/nodes.md)
    "apps.sandboxes.tasks.prepare_node": {"queue": "builds"},
    "apps.sandboxes.tasks.sync_node_images": {"queue": "builds"},
}
VIBEBOX_RECONCILE_INTERVAL = env_duration("VIBEBOX_RECONCILE_INTERVAL", "60s")
# How often API keys' request counts move from Redis into the database (apps/keys/usage.py).
VIBEBOX_USAGE_FLUSH_INTERVAL = env_duration("VIBEBOX_USAGE_FLUSH_INTERVAL", "10s")
# Billing's meter (apps/billing/metering.py, rollup.py): how often running and paused sandboxes
# are sampled, how often a stopped one gets a state-only sample, how often a running sandbox's
# workspace is measured (du), how often and how far back the hourly rollup runs, and how long
# samples are kept (their hours rolled up first).
VIBEBOX_METER_INTERVAL = env_duration("VIBEBOX_METER_INTERVAL", "15s")
VIBEBOX_METER_STOPPED_INTERVAL = env_duration("VIBEBOX_METER_STOPPED_INTERVAL", "5m")
VIBEBOX_METER_WORKSPACE_INTERVAL = env_duration("VIBEBOX_METER_WORKSPACE_INTERVAL", "5m")
VIBEBOX_METER_ROLLUP_INTERVAL = env_duration("VIBEBOX_METER_ROLLUP_INTERVAL", "5m")
VIBEBOX_METER_ROLLUP_WINDOW = env_duration("VIBEBOX_METER_ROLLUP_WINDOW", "2h")
VIBEBOX_METER_SAMPLES_DAYS = env_int("VIBEBOX_METER_SAMPLES_DAYS", 35)
# A pass still queued one interval after beat sent it (the worker was down or busy) expires
# unrun: the next one is on its way, and a pile of stale passes would run back to back.
# How often running sandboxes' costs so far go to the billing page over the activity feed
# (apps/billing/live.py); the task lives outside a tasks module, so the worker imports it by name.
VIBEBOX_BILLING_LIVE_INTERVAL = env_duration("VIBEBOX_BILLING_LIVE_INTERVAL", "15s")
CELERY_IMPORTS = ["apps.billing.live"]
CELERY_BEAT_SCHEDULE = {
    "reconcile-sandboxes": {
        "task": "apps.sandboxes.tasks.reconcile_sandboxes",
        "schedule": VIBEBOX_RECONCILE_INTERVAL,
        "options": {"expires": VIBEBOX_RECONCILE_INTERVAL},
    },
    "reap-submissions": {
        "task": "apps.sandboxes.tasks.reap_submissions",
        "schedule": VIBEBOX_RECONCILE_INTERVAL,
        "options": {"expires": VIBEBOX_RECONCILE_INTERVAL},
    },
    "flush-key-usage": {
        "task": "apps.keys.tasks.flush_key_usage",
        "schedule": VIBEBOX_USAGE_FLUSH_INTERVAL,
        "options": {"expires": VIBEBOX_USAGE_FLUSH_INTERVAL},
    },
    "prune-audit-log": {
        "task": "apps.audit.tasks.prune_audit_log",
        "schedule": env_duration("VIBEBOX_AUDIT_PRUNE_INTERVAL", "24h"),
        "options": {"expires": env_duration("VIBEBOX_AUDIT_PRUNE_INTERVAL", "24h")},
    },
    "deliver-webhooks": {
        "task": "apps.webhooks.tasks.deliver_due_webhooks",
        "schedule": env_duration("VIBEBOX_WEBHOOK_INTERVAL", "5s"),
        "options": {"expires": env_duration("VIBEBOX_WEBHOOK_INTERVAL", "5s")},
    },
    "prune-webhook-deliveries": {
        "task": "apps.webhooks.tasks.prune_webhook_deliveries",
        "schedule": env_duration("VIBEBOX_WEBHOOK_PRUNE_INTERVAL", "1h"),
        "options": {"expires": env_duration("VIBEBOX_WEBHOOK_PRUNE_INTERVAL", "1h")},
    },
    "sample-meters": {
        "task": "apps.billing.tasks.sample_meters",
        "schedule": VIBEBOX_METER_INTERVAL,
        "options": {"expires": VIBEBOX_METER_INTERVAL},
    },
    "rollup-usage": {
        "task": "apps.billing.tasks.rollup_usage",
        "schedule": VIBEBOX_METER_ROLLUP_INTERVAL,
        "options": {"expires": VIBEBOX_METER_ROLLUP_INTERVAL},
    },
    "prune-meter-samples": {
        "task": "apps.billing.tasks.prune_meter_samples",
        "schedule": env_duration("VIBEBOX_METER_PRUNE_INTERVAL", "24h"),
        "options": {"expires": env_duration("VIBEBOX_METER_PRUNE_INTERVAL", "24h")},
    },
    "maintain-pools": {
        "task": "apps.sandboxes.tasks.maintain_pools",
        "schedule": env_duration("VIBEBOX_POOL_INTERVAL", "30s"),
        "options": {"expires": env_duration("VIBEBOX_POOL_INTERVAL", "30s")},
    },
    # Quotas' thresholds and budgets (apps/billing/quotas.py), every meter interval.
    "check-quotas": {
        "task": "apps.billing.tasks.check_quotas",
        "schedule": VIBEBOX_METER_INTERVAL,
        "options": {"expires": VIBEBOX_METER_INTERVAL},
    },
    "billing-live-costs": {
        "task": "apps.billing.live.publish_live_costs",
        "schedule": VIBEBOX_BILLING_LIVE_INTERVAL,
        "options": {"expires": VIBEBOX_BILLING_LIVE_INTERVAL},
    },
    # Invoices and payment (docs/billing.md): last month's invoices are closed by the first pass
    # at least VIBEBOX_INVOICE_CLOSE_DELAY into the new month (later ones find them closed), and
    # past-due accounts are frozen once their grace period ends.
    "close-invoices": {
        "task": "apps.billing.tasks.close_invoices",
        "schedule": env_duration("VIBEBOX_INVOICE_INTERVAL", "1h"),
        "options": {"expires": env_duration("VIBEBOX_INVOICE_INTERVAL", "1h")},
    },
    "dunning": {
        "task": "apps.billing.tasks.dunning",
        "schedule": env_duration("VIBEBOX_DUNNING_INTERVAL", "1h"),
        "options": {"expires": env_duration("VIBEBOX_DUNNING_INTERVAL", "1h")},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
# Single sign-on (apps/sso): allauth signs users in through their organization's identity provider.
SOCIALACCOUNT_ADAPTER = "apps.sso.adapter.SsoAdapter"
ACCOUNT_EMAIL_VERIFICATION = "none"  # the identity provider vouches for the email; no mail is sent
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never link an existing account by email (apps/sso/adapter.py)
# Where SSO domains' TXT records are looked up ("host" or "host:port"); empty: the system's resolver.
VIBEBOX_SSO_DNS_SERVERS = env_list("VIBEBOX_SSO_DNS_SERVERS", [])
LOGIN_REDIRECT_URL = "/sandboxes/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("VIBEBOX_STATIC_ROOT") or None  # for collectstatic; WhiteNoise serves from finders
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.keys.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.keys.permissions.HasScopes",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["apps.keys.throttles.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["vibebox.api.parsers.JSONParser"],  # with a nesting limit
    "DEFAULT_PAGINATION_CLASS": "vibebox.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "vibebox.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Throttles identify anonymous callers by REMOTE_ADDR only: uvicorn's --proxy-headers already takes
    # X-Forwarded-For from trusted proxies (FORWARDED_ALLOW_IPS); DRF's default would trust any client's.
    "NUM_PROXIES": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "VibeBox API",
    "DESCRIPTION": "Isolated Docker sandboxes for AI agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "http", "scheme": "bearer", "description": "vb_live_... or vb_test_... key"},
            "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key"},
        }
    },
    "SECURITY": [{"ApiKeyHeader": []}],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "vibebox.api.schema.postprocess_errors"],
    # Stable names for the enums (several answers have a `status` or a `type`), so generated SDK types keep theirs.
    "ENUM_NAME_OVERRIDES": {
        "SandboxStatusEnum": "apps.sandboxes.models.Status",
        "ExecStatusEnum": "apps.sandboxes.api.serializers.EXEC_STATUSES",
        "ExecutePhaseEnum": "apps.sandboxes.api.serializers.EXECUTE_PHASES",
        "ExecutionStatusEnum": "apps.sandboxes.models.Execution.Status",
        "ExecutionKindEnum": "apps.sandboxes.models.Execution.Kind",
        "BackgroundStatusEnum": "apps.sandboxes.api.schema.BACKGROUND_STATUSES",
        "FileTypeEnum": "apps.sandboxes.api.schema.FILE_TYPES",
        "LogEntryTypeEnum": "apps.sandboxes.api.schema.LOG_TYPES",
        "LogStreamEnum": "apps.sandboxes.api.schema.LOG_STREAMS",
        "GitTokenAuthTypeEnum": ["token"],
        "ClaudeModeEnum": ["human", "assist", "autonomous"],  # apps.agents.models.ClaudeSetup.Mode
        "GitSshAuthTypeEnum": ["ssh"],
        "ScopesEnum": "apps.keys.scopes.ALL_SCOPES",
        "GrantAccessEnum": "apps.sandboxes.models.SandboxGrant.Access",
        "PermissionModeEnum": "apps.agents.asks.PERMISSION_MODES",
        "ClaudeAskStatusEnum": "apps.agents.models.ClaudeAsk.Status",
        "ClaudeMessageRoleEnum": "apps.agents.api.serializers.MESSAGE_ROLES",
        "ClaudeMessageTypeEnum": "apps.agents.api.serializers.MESSAGE_TYPES",
        "ChangeSetStatusEnum": "apps.agents.models.ChangeSet.Status",
        "ChangeFileStatusEnum": "apps.agents.api.serializers.CHANGE_FILE_STATUSES",
        "ReviewStatusEnum": "apps.agents.api.serializers.REVIEW_STATUSES",
        "DeliveryStatusEnum": "apps.webhooks.models.Delivery.Status",
        "WebhookEventEnum": "apps.webhooks.api.serializers.EVENT_NAMES",
        "InvoiceStatusEnum": "apps.billing.models.InvoiceStatus",
        "GitHookProviderEnum": "apps.sandboxes.models.GitHook.Provider",
        "GitHookDeliveryStatusEnum": "apps.sandboxes.models.GitHookDelivery.Status",
    },
}

LOG_LEVEL = env_str("VIBEBOX_LOG_LEVEL", "INFO")
# Structured logs (vibebox/logs.py; docs/monitoring.md, "Traces and logs"): VIBEBOX_LOG_FORMAT=json|text
# (default json, text when standard error is a terminal); every line carries the request's id, trace
# id, route, caller and sandbox while a request is handled. uvicorn's and Celery's loggers write
# through the same handler; the access log is VibeBox's own (`vibebox.access`, uvicorn's is off in
# the Procfile).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"vibebox": {"()": "vibebox.logs.formatter"}},
    "filters": {"context": {"()": "vibebox.logs.ContextFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "vibebox", "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "vibebox": {"level": LOG_LEVEL},
        "apps": {"level": LOG_LEVEL},
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "celery": {"level": "INFO"},
    },
}

# Email (invitations): printed to the server's output unless an SMTP host is set (docs/operations.md).
VIBEBOX_EMAIL_HOST = env_str("VIBEBOX_EMAIL_HOST", "")
EMAIL_BACKEND = env_str(
    "VIBEBOX_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if VIBEBOX_EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = VIBEBOX_EMAIL_HOST or "localhost"
EMAIL_PORT = env_int("VIBEBOX_EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("VIBEBOX_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("VIBEBOX_EMAIL_PASSWORD", "")
EMAIL_USE_SSL = env_bool("VIBEBOX_EMAIL_SSL", False)  # implicit TLS (port 465)
EMAIL_USE_TLS = env_bool("VIBEBOX_EMAIL_STARTTLS", not EMAIL_USE_SSL)  # STARTTLS (port 587)
if EMAIL_USE_SSL and EMAIL_USE_TLS:
    raise ImproperlyConfigured("VIBEBOX_EMAIL_SSL and VIBEBOX_EMAIL_STARTTLS cannot both be on: choose one.")
EMAIL_TIMEOUT = env_duration("VIBEBOX_EMAIL_TIMEOUT", "10s")  # a hung mail server holds a request this long at most
# ---- White-label (docs/operations.md, "Branding"): what users see the product called ----
# Every page, email, CLI banner and API message names the product through these (apps/orgs/
# branding.py); an organization may override them for its members' dashboard (not the sender).
VIBEBOX_BRAND_NAME = env_str("VIBEBOX_BRAND_NAME", "VibeBox")
VIBEBOX_BRAND_LOGO_URL = env_str("VIBEBOX_BRAND_LOGO_URL", "")  # https://… or /static/…; empty: the name
VIBEBOX_BRAND_PRIMARY_COLOR = env_str("VIBEBOX_BRAND_PRIMARY_COLOR", "")  # #rrggbb; empty: the stylesheet's
VIBEBOX_BRAND_PRIMARY_TEXT_COLOR = env_str("VIBEBOX_BRAND_PRIMARY_TEXT_COLOR", "")  # text on it
VIBEBOX_BRAND_SUPPORT_URL = env_str("VIBEBOX_BRAND_SUPPORT_URL", "")  # https://… or mailto:…; empty: no link
VIBEBOX_BRAND_DOCS_URL = env_str("VIBEBOX_BRAND_DOCS_URL", "/api/docs")
# The sender of every email; VIBEBOX_EMAIL_FROM is its older name.
VIBEBOX_BRAND_EMAIL_FROM = env_str(
    "VIBEBOX_BRAND_EMAIL_FROM", env_str("VIBEBOX_EMAIL_FROM", f"{VIBEBOX_BRAND_NAME} <vibebox@localhost>")
)
DEFAULT_FROM_EMAIL = VIBEBOX_BRAND_EMAIL_FROM
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# ---- VibeBox product settings (docs/operations.md) ----
# The server's public origin (https://vibebox.example.com), for links in emails; default: the
# origin the request that sends them came to.
VIBEBOX_PUBLIC_URL = env_str("VIBEBOX_PUBLIC_URL", "").rstrip("/")
# Invitations to organizations (docs/api.md, "Invitations"): how long a link works, and whether
# any signed-in user may accept one (else only the user whose email it was sent to).
VIBEBOX_INVITATION_DAYS = max(1, env_int("VIBEBOX_INVITATION_DAYS", 7))
VIBEBOX_INVITATION_ANY_EMAIL = env_bool("VIBEBOX_INVITATION_ANY_EMAIL", False)
# Several VibeBox installations (or the test suite) may share one Docker engine:
# each only manages containers labelled with its own instance name.
VIBEBOX_INSTANCE = env_str("VIBEBOX_INSTANCE", "default")
VIBEBOX_RUNTIME_DRIVER = env_str("VIBEBOX_RUNTIME_DRIVER", "docker")
VIBEBOX_DOCKER_HOST = env_str("DOCKER_HOST", "")
# How long one engine call may take before it fails as runtime_unavailable (a hung engine).
VIBEBOX_DOCKER_TIMEOUT = env_duration("VIBEBOX_DOCKER_TIMEOUT", 120)
# The Kubernetes runtime driver (VIBEBOX_RUNTIME_DRIVER=kubernetes, docs/kubernetes.md): sandboxes
# are Pods in one namespace of the cluster the kubeconfig names (empty: the in-cluster service
# account), sandboxd copied from an image holding /opt/vibebox/sandboxd and `cp` (sandboxd-relay's),
# workspaces PVCs of the storage class (empty: the cluster's default), the control plane's
# pods in VIBEBOX_KUBERNETES_CONTROL_NAMESPACE (the only ones that reach sandboxes).
VIBEBOX_KUBECONFIG = env_str("VIBEBOX_KUBECONFIG", "")
VIBEBOX_KUBERNETES_CONTEXT = env_str("VIBEBOX_KUBERNETES_CONTEXT", "")
VIBEBOX_KUBERNETES_NAMESPACE = env_str("VIBEBOX_KUBERNETES_NAMESPACE", "vibebox-sandboxes")
VIBEBOX_KUBERNETES_CONTROL_NAMESPACE = env_str("VIBEBOX_KUBERNETES_CONTROL_NAMESPACE", "vibebox")
VIBEBOX_KUBERNETES_SANDBOXD_IMAGE = env_str("VIBEBOX_KUBERNETES_SANDBOXD_IMAGE", "")
VIBEBOX_KUBERNETES_STORAGE_CLASS = env_str("VIBEBOX_KUBERNETES_STORAGE_CLASS", "")
VIBEBOX_KUBERNETES_WORKSPACE_SIZE = env_size("VIBEBOX_KUBERNETES_WORKSPACE_SIZE", "10g")
# A Pod has no pids limit of its own: a start is refused on a node whose kubelet's podPidsLimit is
# unset or above the sandbox's VIBEBOX_PIDS_LIMIT (read from the node's /configz).
VIBEBOX_KUBERNETES_REQUIRE_PIDS_LIMIT = env_bool("VIBEBOX_KUBERNETES_REQUIRE_PIDS_LIMIT", True)
VIBEBOX_IMAGE_PREFIX = env_str("VIBEBOX_IMAGE_PREFIX", "vibebox")
VIBEBOX_IMAGES_DIR = Path(env_str("VIBEBOX_IMAGES_DIR", str(BASE_DIR / "images")))
# sandboxd's Go source, built into a read-only volume every sandbox mounts (docs/sandboxd.md).
VIBEBOX_SANDBOXD_DIR = BASE_DIR / "sandboxd"
# "system": the host's CA bundle (the default); a path: that PEM bundle; empty: none.
VIBEBOX_EXTRA_CA_CERTS = env_str("VIBEBOX_EXTRA_CA_CERTS", "system")
VIBEBOX_SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
VIBEBOX_DEBIAN_MIRROR = env_str("VIBEBOX_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# A create of a template whose image is still building answers 503 template_building with this
# Retry-After, or (with "wait": true) waits up to VIBEBOX_TEMPLATE_WAIT (docs/templates.md).
VIBEBOX_TEMPLATE_RETRY_AFTER = env_duration("VIBEBOX_TEMPLATE_RETRY_AFTER", "30s")
VIBEBOX_TEMPLATE_WAIT = env_duration("VIBEBOX_TEMPLATE_WAIT", "10m")
# `make run` has the worker build the templates `make setup` left (buildimages --background).
VIBEBOX_TEMPLATE_BACKGROUND_BUILDS = env_bool("VIBEBOX_TEMPLATE_BACKGROUND_BUILDS", True)
# Marketplace submissions (docs/marketplace.md): the largest build context (a tar) and Dockerfile
# accepted; the contexts are kept under DATA_DIR/marketplace/submissions/.
VIBEBOX_TEMPLATE_CONTEXT_MAX = env_size("VIBEBOX_TEMPLATE_CONTEXT_MAX", "50MiB")
VIBEBOX_TEMPLATE_DOCKERFILE_MAX = 64 * 1024
VIBEBOX_MARKETPLACE_DIR = DATA_DIR / "marketplace"
# The marketplace's validation pipeline (docs/marketplace.md, "Validation pipeline"): the limits a
# submitted template's build, policy checks and smoke test run under.
VIBEBOX_TEMPLATE_BUILD_TIMEOUT = env_duration("VIBEBOX_TEMPLATE_BUILD_TIMEOUT", "20m")
VIBEBOX_TEMPLATE_BUILD_MEMORY = env_size("VIBEBOX_TEMPLATE_BUILD_MEMORY", "2g")
VIBEBOX_TEMPLATE_BUILD_CPUS = env_float("VIBEBOX_TEMPLATE_BUILD_CPUS", 1.0)
VIBEBOX_TEMPLATE_MAX_SIZE = env_size("VIBEBOX_TEMPLATE_MAX_SIZE", "4g")
VIBEBOX_TEMPLATE_CONTEXT_FILES = int(env_str("VIBEBOX_TEMPLATE_CONTEXT_FILES", "20000"))
VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = env_duration("VIBEBOX_TEMPLATE_SMOKE_TIMEOUT", "5m")
# A submission still queued after VIBEBOX_TEMPLATE_REQUEUE_AFTER without a change and with no task
# in the broker's builds queue is sent to the worker again (its task was lost); one in that state
# last (re)queued over VIBEBOX_TEMPLATE_QUEUE_TIMEOUT ago fails; one whose task waits in the broker
# is left to wait (the reap-submissions pass, docs/marketplace.md).
VIBEBOX_TEMPLATE_REQUEUE_AFTER = env_duration("VIBEBOX_TEMPLATE_REQUEUE_AFTER", "15m")
VIBEBOX_TEMPLATE_QUEUE_TIMEOUT = env_duration("VIBEBOX_TEMPLATE_QUEUE_TIMEOUT", "3h")
# Whether a queued submission is sent to the Celery worker (tests run the pipeline themselves).
VIBEBOX_TEMPLATE_PIPELINE_DISPATCH = env_bool("VIBEBOX_TEMPLATE_PIPELINE_DISPATCH", True)
# Setuid/setgid files a submitted image may add to its base (Debian's usual ones).
VIBEBOX_TEMPLATE_SETUID_ALLOW = env_list(
    "VIBEBOX_TEMPLATE_SETUID_ALLOW",
    [
        "/usr/bin/sudo",
        "/usr/bin/su",
        "/usr/bin/passwd",
        "/usr/bin/chsh",
        "/usr/bin/chfn",
        "/usr/bin/gpasswd",
        "/usr/bin/newgrp",
        "/usr/bin/chage",
        "/usr/bin/expiry",
        "/usr/bin/mount",
        "/usr/bin/umount",
        "/usr/bin/crontab",
        "/usr/bin/ssh-agent",
        "/usr/sbin/unix_chkpwd",
        "/usr/lib/openssh/ssh-keysign",
        "/usr/lib/dbus-1.0/dbus-daemon-launch-helper",
    ],
)
VIBEBOX_ALLOWED_RUNTIMES = env_list("VIBEBOX_ALLOWED_RUNTIMES", ["runc"])
VIBEBOX_ALLOWED_CAPABILITIES = env_list(
    "VIBEBOX_ALLOWED_CAPABILITIES", ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE"]
)
# Never NET_RAW or NET_ADMIN: with either a sandbox could forge another's address on its bridge,
# and the egress proxy, the firewall's per-sandbox rules and nodes' back links all tell sandboxes
# apart by address (docs/nodes.md, docs/operations.md).
_allowed_caps = {c.upper().removeprefix("CAP_") for c in VIBEBOX_ALLOWED_CAPABILITIES}
_forbidden_caps = {"NET_RAW", "NET_ADMIN", "ALL"} & _allowed_caps
if _forbidden_caps:
    raise ImproperlyConfigured(
        f"VIBEBOX_ALLOWED_CAPABILITIES may not include {', '.join(sorted(_forbidden_caps))}: a sandbox "
        "could take another's network address (docs/operations.md)."
    )
VIBEBOX_FIREWALL = env_bool("VIBEBOX_FIREWALL", True)
# Docker networks sandboxes also join (an internal git server, a package mirror). Sandboxes can
# reach each other on these, so use them only for networks made for this purpose.
VIBEBOX_EXTRA_NETWORKS = env_list("VIBEBOX_EXTRA_NETWORKS", [])
# Private destinations (CIDRs, IPv4 or IPv6) sandboxes may reach anyway: the firewall rejects the
# rest of the private, link-local and reserved ranges (apps/sandboxes/runtime/firewall.py).
VIBEBOX_EGRESS_ALLOW_PRIVATE = env_cidrs("VIBEBOX_EGRESS_ALLOW_PRIVATE")
# Per-sandbox egress policies (docs/operations.md, "Egress policy"): the HTTP(S) egress proxy
# (`manage.py runegress`, the Procfile's `egress`) on the sandbox network's gateway address, like
# the model gateway; the firewall lets sandboxes reach this one more port of the host.
VIBEBOX_EGRESS_PROXY_HOST = env_str("VIBEBOX_EGRESS_PROXY_HOST", "")
VIBEBOX_EGRESS_PROXY_PORT = env_int("VIBEBOX_EGRESS_PROXY_PORT", 8002)
VIBEBOX_EGRESS_PROXY_CONNECTIONS = env_int("VIBEBOX_EGRESS_PROXY_CONNECTIONS", 2048)  # open at once, all sandboxes
VIBEBOX_EGRESS_PROXY_PER_SANDBOX = env_int("VIBEBOX_EGRESS_PROXY_PER_SANDBOX", 256)  # open at once, per sandbox
VIBEBOX_EGRESS_PROXY_CONNECT_TIMEOUT = env_duration("VIBEBOX_EGRESS_PROXY_CONNECT_TIMEOUT", "10s")
VIBEBOX_EGRESS_PROXY_IDLE_TIMEOUT = env_duration("VIBEBOX_EGRESS_PROXY_IDLE_TIMEOUT", "5m")

# Warm pools: started, unassigned containers per template, taken by creates (docs/operations.md).
VIBEBOX_POOL_ENABLED = env_bool("VIBEBOX_POOL_ENABLED", True)
VIBEBOX_POOL_SIZES = {
    name.strip(): int(size)
    for name, _, size in (item.partition("=") for item in env_list("VIBEBOX_POOL_SIZES", ["node-20=5", "python-3=2"]))
    if name.strip() and size.strip().isdigit()
}
VIBEBOX_POOL_MAX_SIZE = env_int("VIBEBOX_POOL_MAX_SIZE", 20)
VIBEBOX_POOL_DEMAND_WINDOW = env_duration("VIBEBOX_POOL_DEMAND_WINDOW", "10m")
VIBEBOX_POOL_INTERVAL = env_duration("VIBEBOX_POOL_INTERVAL", "30s")
# Refill right after a take, in a background thread of the process that took (off in unit tests).
VIBEBOX_POOL_REFILL_AFTER_TAKE = env_bool("VIBEBOX_POOL_REFILL_AFTER_TAKE", True)
# Pools on nodes too: each placeable node keeps each pool's size warm, as the local engine does.
VIBEBOX_POOL_NODES = env_bool("VIBEBOX_POOL_NODES", True)

# Snapshots: workspace archives live here (the committed images in the engine).
VIBEBOX_SNAPSHOT_DIR = Path(env_str("VIBEBOX_SNAPSHOT_DIR", str(DATA_DIR / "snapshots")))
# Auto-pause: the shortest `autoPause` accepted (idle sandboxes are paused by the reconcile pass).
VIBEBOX_AUTO_PAUSE_MIN = env_duration("VIBEBOX_AUTO_PAUSE_MIN", "10s")

VIBEBOX_DEFAULT_CPU = env_float("VIBEBOX_DEFAULT_CPU", 1.0)
VIBEBOX_MAX_CPU = env_float("VIBEBOX_MAX_CPU", 2.0)
VIBEBOX_DEFAULT_MEMORY = env_size("VIBEBOX_DEFAULT_MEMORY", "1g")
VIBEBOX_MAX_MEMORY = env_size("VIBEBOX_MAX_MEMORY", "8g")
VIBEBOX_MIN_MEMORY = env_size("VIBEBOX_MIN_MEMORY", "64m")
VIBEBOX_DEFAULT_DISK = env_size("VIBEBOX_DEFAULT_DISK", "10g")  # applied where the engine can enforce it
VIBEBOX_MAX_DISK = env_size("VIBEBOX_MAX_DISK", "50g")
VIBEBOX_PIDS_LIMIT = env_int("VIBEBOX_PIDS_LIMIT", 512)
VIBEBOX_TMPFS_SIZE = env_size("VIBEBOX_TMPFS_SIZE", "512m")
VIBEBOX_LOG_MAX_SIZE = env_str("VIBEBOX_LOG_MAX_SIZE", "10m")
VIBEBOX_LOG_MAX_FILES = env_int("VIBEBOX_LOG_MAX_FILES", 3)
VIBEBOX_STOP_TIMEOUT = env_int("VIBEBOX_STOP_TIMEOUT", 5)

VIBEBOX_EPHEMERAL_DEFAULT_TIMEOUT = env_duration("VIBEBOX_EPHEMERAL_DEFAULT_TIMEOUT", "30m")
VIBEBOX_MAX_TIMEOUT = env_duration("VIBEBOX_MAX_TIMEOUT", "30d")
# Ephemeral sandboxes (spec 3.3): their own ceilings, under the general ones (docs/operations.md).
# 0 for CPU and memory: the general maximum; 0 for the count: no limit of its own.
VIBEBOX_EPHEMERAL_MAX_TIMEOUT = env_duration("VIBEBOX_EPHEMERAL_MAX_TIMEOUT", "1d")
VIBEBOX_EPHEMERAL_MAX_CPU = env_float("VIBEBOX_EPHEMERAL_MAX_CPU", 0.0)
VIBEBOX_EPHEMERAL_MAX_MEMORY = env_size("VIBEBOX_EPHEMERAL_MAX_MEMORY", "0")
VIBEBOX_EPHEMERAL_MAX_PER_ORG = env_int("VIBEBOX_EPHEMERAL_MAX_PER_ORG", 0)
VIBEBOX_MAX_SANDBOXES_PER_OWNER = env_int("VIBEBOX_MAX_SANDBOXES_PER_OWNER", 50)
# Per-owner totals across live sandboxes, and snapshot quotas (0: no limit).
VIBEBOX_MAX_CPU_PER_OWNER = env_float("VIBEBOX_MAX_CPU_PER_OWNER", 32.0)
VIBEBOX_MAX_MEMORY_PER_OWNER = env_size("VIBEBOX_MAX_MEMORY_PER_OWNER", "64g")
VIBEBOX_MAX_DISK_PER_OWNER = env_size("VIBEBOX_MAX_DISK_PER_OWNER", "500g")  # only when disk limits are on
VIBEBOX_MAX_SNAPSHOTS_PER_OWNER = env_int("VIBEBOX_MAX_SNAPSHOTS_PER_OWNER", 100)
VIBEBOX_MAX_SNAPSHOT_BYTES_PER_OWNER = env_size("VIBEBOX_MAX_SNAPSHOT_BYTES_PER_OWNER", "100g")
VIBEBOX_STUCK_AFTER = env_duration("VIBEBOX_STUCK_AFTER", "5m")

VIBEBOX_RATE_LIMIT = env_str("VIBEBOX_RATE_LIMIT", "1200/min")
VIBEBOX_KEY_ROTATION_GRACE = env_duration("VIBEBOX_KEY_ROTATION_GRACE", "24h")
# Sign-in lockout (/login/ and /admin/login/, vibebox/login_limits.py): this many failures for one
# user name from one address lock that pair out for the cool-off.
VIBEBOX_LOGIN_MAX_FAILURES = max(1, env_int("VIBEBOX_LOGIN_MAX_FAILURES", 5))
VIBEBOX_LOGIN_COOLOFF = env_duration("VIBEBOX_LOGIN_COOLOFF", "15m")
# The audit log (docs/audit.md): entries older than this many days (0: never) are archived to
# the folder as gzipped JSON lines, then removed, by a daily task.
VIBEBOX_AUDIT_RETENTION_DAYS = env_int("VIBEBOX_AUDIT_RETENTION_DAYS", 365)
VIBEBOX_AUDIT_ARCHIVE_DIR = Path(env_str("VIBEBOX_AUDIT_ARCHIVE_DIR", str(DATA_DIR / "audit-archive")))
VIBEBOX_METADATA_MAX_KEYS = env_int("VIBEBOX_METADATA_MAX_KEYS", 50)
VIBEBOX_METADATA_MAX_BYTES = env_int("VIBEBOX_METADATA_MAX_BYTES", 16384)

# Commands, code execution, files, environment (docs/operations.md).
VIBEBOX_EXEC_DEFAULT_TIMEOUT = env_duration("VIBEBOX_EXEC_DEFAULT_TIMEOUT", "60s")
VIBEBOX_EXEC_MAX_TIMEOUT = env_duration("VIBEBOX_EXEC_MAX_TIMEOUT", "1h")
VIBEBOX_EXEC_OUTPUT_LIMIT = env_size("VIBEBOX_EXEC_OUTPUT_LIMIT", "10m")
VIBEBOX_EXEC_STORED_OUTPUT = env_size("VIBEBOX_EXEC_STORED_OUTPUT", "64k")
VIBEBOX_EXEC_STDIN_LIMIT = env_size("VIBEBOX_EXEC_STDIN_LIMIT", "10m")
VIBEBOX_CODE_LIMIT = env_size("VIBEBOX_CODE_LIMIT", "5m")
VIBEBOX_UPLOAD_MAX_BYTES = env_size("VIBEBOX_UPLOAD_MAX_BYTES", "5g")
# A raw upload streams to the sandbox as it arrives (vibebox/streambody.py), on a request thread:
# a client that sends nothing for the idle timeout, or on average less than the minimum rate
# (bytes per second, counted once the idle timeout has passed), has its upload refused, so a
# trickle cannot hold a thread and a sandbox connection for long.
VIBEBOX_UPLOAD_IDLE_TIMEOUT = env_duration("VIBEBOX_UPLOAD_IDLE_TIMEOUT", "60s")
VIBEBOX_UPLOAD_MIN_RATE = env_size("VIBEBOX_UPLOAD_MIN_RATE", "16k")
if VIBEBOX_UPLOAD_IDLE_TIMEOUT <= 0:
    raise ImproperlyConfigured("VIBEBOX_UPLOAD_IDLE_TIMEOUT must be above 0 (a stalled upload would hold a thread).")
# Every other request body (vibebox/bodylimit.py counts the bytes as they arrive): room for a
# 10 MiB stdin or 5 MiB of code even when JSON escaping doubles their size.
VIBEBOX_REQUEST_MAX_BYTES = env_size("VIBEBOX_REQUEST_MAX_BYTES", "32m")
# Django's own check on the bodies it reads whole (DRF's JSON parser, forms): the same limit, not 2.5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = VIBEBOX_REQUEST_MAX_BYTES
VIBEBOX_FILE_LIST_LIMIT = env_int("VIBEBOX_FILE_LIST_LIMIT", 10000)
# Key for secrets at rest (env values, later stored credentials); default: derived from the secret key.
VIBEBOX_ENCRYPTION_KEY = env_str("VIBEBOX_ENCRYPTION_KEY") or SECRET_KEY

# Claude Code and its model gateway (docs/claude.md).
# The operator's Anthropic key: used by the gateway only, never given to a sandbox.
VIBEBOX_ANTHROPIC_API_KEY = env_str("VIBEBOX_ANTHROPIC_API_KEY", "")
VIBEBOX_ANTHROPIC_UPSTREAM = env_str("VIBEBOX_ANTHROPIC_UPSTREAM", "https://api.anthropic.com").rstrip("/")
# Where the gateway listens: by default the sandbox network's gateway address (reachable from
# sandboxes, not from elsewhere); the firewall lets sandboxes reach this one port of the host.
VIBEBOX_GATEWAY_HOST = env_str("VIBEBOX_GATEWAY_HOST", "")
VIBEBOX_GATEWAY_PORT = env_int("VIBEBOX_GATEWAY_PORT", 8001)
# The gateway's URL as sandboxes see it; default http://<network gateway>:<port>.
VIBEBOX_GATEWAY_URL = env_str("VIBEBOX_GATEWAY_URL", "").rstrip("/")
VIBEBOX_CLAUDE_ASK_TIMEOUT = env_duration("VIBEBOX_CLAUDE_ASK_TIMEOUT", "30m")
# Where MCP tools (at /mcp and in the gateway) call the REST API; default: this server on loopback.
VIBEBOX_MCP_API_URL = env_str("VIBEBOX_MCP_API_URL", "")
VIBEBOX_CLAUDE_DIFF_LIMIT = env_size("VIBEBOX_CLAUDE_DIFF_LIMIT", "2m")
# USD per million tokens (input, output, cache write, cache read) by model family; the family is
# the first of these names found in the model id.
VIBEBOX_CLAUDE_PRICES = {
    "opus": (15.0, 75.0, 18.75, 1.5),
    "sonnet": (3.0, 15.0, 3.75, 0.3),
    "haiku": (1.0, 5.0, 1.25, 0.1),
}

# Git (docs/operations.md).
VIBEBOX_GIT_TIMEOUT = env_duration("VIBEBOX_GIT_TIMEOUT", "10m")
VIBEBOX_GIT_AUTHOR_NAME = env_str("VIBEBOX_GIT_AUTHOR_NAME", "")  # default: the API key's user
VIBEBOX_GIT_AUTHOR_EMAIL = env_str("VIBEBOX_GIT_AUTHOR_EMAIL", "")
VIBEBOX_GIT_DIFF_LIMIT = env_size("VIBEBOX_GIT_DIFF_LIMIT", "2m")
# Auto-pull webhooks (docs/api.md, "Auto-pull webhooks"): POST /api/v1/git-hooks/{id} is unauthenticated but for the
# signature, so its body is capped (vibebox/bodylimit.py) and its rate counted per hook; a sandbox
# holds this many hooks; each hook keeps its last deliveries (also what refuses replays).
VIBEBOX_GIT_HOOK_MAX_BYTES = env_size("VIBEBOX_GIT_HOOK_MAX_BYTES", "1m")
VIBEBOX_GIT_HOOK_RATE = env_str("VIBEBOX_GIT_HOOK_RATE", "30/min")
VIBEBOX_GIT_HOOKS_PER_SANDBOX = env_int("VIBEBOX_GIT_HOOKS_PER_SANDBOX", 10)
VIBEBOX_GIT_HOOK_DELIVERIES_KEPT = env_int("VIBEBOX_GIT_HOOK_DELIVERIES_KEPT", 200)
# Queue the pull as a Celery task when a push is accepted (tests call the task themselves).
VIBEBOX_GIT_HOOK_DISPATCH = env_bool("VIBEBOX_GIT_HOOK_DISPATCH", True)

# WebSockets: streams and terminals (docs/operations.md).
VIBEBOX_WS_QUEUE_MESSAGES = env_int("VIBEBOX_WS_QUEUE_MESSAGES", 256)  # per client; a client this far behind is dropped
VIBEBOX_WS_SLOW_CLIENT_SECONDS = env_duration("VIBEBOX_WS_SLOW_CLIENT_SECONDS", "10s")
VIBEBOX_TERMINAL_IDLE_TIMEOUT = env_duration("VIBEBOX_TERMINAL_IDLE_TIMEOUT", "30m")
# Per user, across web processes (apps/sandboxes/limits.py): 429 too_many_streams past these.
VIBEBOX_MAX_STREAMS_PER_OWNER = env_int("VIBEBOX_MAX_STREAMS_PER_OWNER", 100)  # WebSocket connections
VIBEBOX_MAX_TERMINALS_PER_OWNER = env_int("VIBEBOX_MAX_TERMINALS_PER_OWNER", 32)
VIBEBOX_MAX_PROCESSES_PER_OWNER = env_int("VIBEBOX_MAX_PROCESSES_PER_OWNER", 32)
# Open streams re-check their key or session this often (revocation, logout...): at most 5 s.
VIBEBOX_WS_RECHECK_SECONDS = min(env_duration("VIBEBOX_WS_RECHECK_SECONDS", "3s"), 5.0)
VIBEBOX_WS_MAX_MESSAGE = env_size("VIBEBOX_WS_MAX_MESSAGE", "16m")  # a client's message; uvicorn's --ws-max-size
# Full origins (scheme://host:port) whose pages may open WebSockets; default: the server's own.
VIBEBOX_ALLOWED_ORIGINS = env_list("VIBEBOX_ALLOWED_ORIGINS", [])
VIBEBOX_EVENTS_KEPT = env_int("VIBEBOX_EVENTS_KEPT", 1000)  # lifecycle events kept per sandbox

# Webhooks (docs/webhooks.md): the delays between a delivery's attempts (then `failed`), how long
# one attempt may take, and what targets are allowed.
VIBEBOX_WEBHOOK_RETRY_SCHEDULE = env_durations("VIBEBOX_WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h")
VIBEBOX_WEBHOOK_TIMEOUT = env_duration("VIBEBOX_WEBHOOK_TIMEOUT", "15s")
VIBEBOX_WEBHOOK_ALLOW_HTTP = env_bool("VIBEBOX_WEBHOOK_ALLOW_HTTP", False)
VIBEBOX_WEBHOOK_ALLOW_PRIVATE = env_bool("VIBEBOX_WEBHOOK_ALLOW_PRIVATE", False)
# An endpoint whose every delivery failed for this long is disabled.
VIBEBOX_WEBHOOK_DISABLE_AFTER = env_duration("VIBEBOX_WEBHOOK_DISABLE_AFTER", "5d")
# Finished deliveries (succeeded, failed) older than this are removed with their attempts (0: kept).
VIBEBOX_WEBHOOK_RETENTION = env_duration("VIBEBOX_WEBHOOK_RETENTION", "30d")
# Queue a Celery task for an endpoint as soon as its event commits (else only the beat pass,
# every VIBEBOX_WEBHOOK_INTERVAL, sends).
VIBEBOX_WEBHOOK_DISPATCH = env_bool("VIBEBOX_WEBHOOK_DISPATCH", True)

# Billing: plans and costs (docs/billing.md, "Plans and prices"). The plan of an organization with
# no assignment, and the longest window the usage, costs and export endpoints accept.
VIBEBOX_DEFAULT_PLAN = env_str("VIBEBOX_DEFAULT_PLAN", "free")
VIBEBOX_BILLING_MAX_WINDOW = env_duration("VIBEBOX_BILLING_MAX_WINDOW", "366d")

# Invoices and payment (apps/billing/invoices.py, payments.py; docs/billing.md, "Invoices and payment").
# The tax rate applied to invoices (a fraction: 0.19 is 19 %) unless an organization's billing
# account has its own (OrgBilling.tax_rate).
VIBEBOX_TAX_RATE = env_str("VIBEBOX_TAX_RATE", "0")
# A month is closed this long after it ended, so the last hour's usage is rolled up first.
VIBEBOX_INVOICE_CLOSE_DELAY = env_duration("VIBEBOX_INVOICE_CLOSE_DELAY", "2h")
# Who issues the invoices: the PDF's letterhead (lines separated by "|").
VIBEBOX_INVOICE_ISSUER = env_str("VIBEBOX_INVOICE_ISSUER", VIBEBOX_BRAND_NAME)
# Stripe (off unless the secret key is set): customers, Checkout for payment methods, invoices
# pushed when closed, and the webhook endpoint POST /api/v1/billing/stripe/webhook.
VIBEBOX_STRIPE_SECRET_KEY = env_str("VIBEBOX_STRIPE_SECRET_KEY", "")
VIBEBOX_STRIPE_WEBHOOK_SECRET = env_str("VIBEBOX_STRIPE_WEBHOOK_SECRET", "")
VIBEBOX_STRIPE_API_BASE = env_str("VIBEBOX_STRIPE_API_BASE", "").rstrip("/")  # empty: https://api.stripe.com
# Queue the push of a closed invoice to Stripe as soon as it commits (tests push themselves).
VIBEBOX_STRIPE_DISPATCH = env_bool("VIBEBOX_STRIPE_DISPATCH", True)
# Dunning: a failed payment makes the account past_due; unpaid this many days later, frozen
# (nothing new may start) until an invoice is paid.
VIBEBOX_DUNNING_GRACE_DAYS = env_int("VIBEBOX_DUNNING_GRACE_DAYS", 14)

# Preview URLs (apps/sandboxes/preview/; docs/api.md, "Preview URLs"; docs/operations.md).
# Host form http://<port>-<sandboxId>.<VIBEBOX_PREVIEW_DOMAIN>[:port]/ (a wildcard DNS name pointing
# at the server; *.localhost resolves to loopback in browsers) and path form <public url>/preview/<id>/<port>/.
VIBEBOX_PREVIEW_DOMAIN = env_str("VIBEBOX_PREVIEW_DOMAIN", "preview.localhost").strip().strip(".").lower()
# The scheme of preview URLs; empty: VIBEBOX_PUBLIC_URL's, else http.
VIBEBOX_PREVIEW_URL_SCHEME = env_str("VIBEBOX_PREVIEW_URL_SCHEME", "").strip().lower()
if VIBEBOX_PREVIEW_URL_SCHEME not in ("", "http", "https"):
    raise ImproperlyConfigured("VIBEBOX_PREVIEW_URL_SCHEME is http or https.")
# How long the proxy waits for a sandbox's server to accept a connection, and for its response's headers.
VIBEBOX_PREVIEW_CONNECT_TIMEOUT = env_duration("VIBEBOX_PREVIEW_CONNECT_TIMEOUT", "5s")
VIBEBOX_PREVIEW_HEADERS_TIMEOUT = env_duration("VIBEBOX_PREVIEW_HEADERS_TIMEOUT", "5m")

# Code contexts (apps/sandboxes/contexts.py, docs/api.md "Code contexts"): what one execute may
# answer (stdout and stderr each, one rich result, all results, how many results) and how many
# contexts a sandbox may hold.
VIBEBOX_CONTEXT_OUTPUT_LIMIT = env_size("VIBEBOX_CONTEXT_OUTPUT_LIMIT", "1m")
VIBEBOX_CONTEXT_RESULT_LIMIT = env_size("VIBEBOX_CONTEXT_RESULT_LIMIT", "8m")
VIBEBOX_CONTEXT_RESULTS_LIMIT = env_size("VIBEBOX_CONTEXT_RESULTS_LIMIT", "16m")  # all of one execute's results
VIBEBOX_CONTEXT_MAX_RESULTS = env_int("VIBEBOX_CONTEXT_MAX_RESULTS", 100)
VIBEBOX_CONTEXT_MAX_PER_SANDBOX = env_int("VIBEBOX_CONTEXT_MAX_PER_SANDBOX", 16)

# File watch over Server-Sent Events (GET /api/v1/sandboxes/{id}/files/watch; docs/api.md "File
# watch"): a `: keep-alive` comment this often while nothing changes, so proxies keep it open.
VIBEBOX_SSE_KEEPALIVE_SECONDS = env_duration("VIBEBOX_SSE_KEEPALIVE_SECONDS", "15s")

# SLOs and the status page (apps/monitoring/slo.py, health.py; docs/monitoring.md "SLOs and the status
# page"). Each SLO: an objective (the fraction of good events) over a window, and its SLI read from
# the platform's own metrics (vibebox/metrics.py): `ratio` (a counter's series matching `good`, or
# not matching `bad`, among those matching `total`; label -> anchored regex; a label in both
# takes bad's or good's pattern) or `latency` (a
# histogram's bucket `le=threshold` over its count, series matching `labels`). Operators override
# with JSON in the environment, merged by id over these: VIBEBOX_SLOS='{"api_availability":
# {"objective": 0.995}, "exec_latency": null}' (null drops one; a new id needs a whole spec).
VIBEBOX_SLOS = {
    "api_availability": {
        "description": "API requests answered without a server error (status below 500).",
        "objective": 0.999,
        "window": "30d",
        "sli": {"kind": "ratio", "metric": "vibebox_http_requests_total", "bad": {"status": "5.."}},
    },
    "create_latency": {
        "description": "Sandbox creates that took under 0.5 s.",
        "objective": 0.95,
        "window": "30d",
        "sli": {"kind": "latency", "metric": "vibebox_sandbox_create_seconds", "threshold": 0.5},
    },
    "exec_latency": {
        "description": "Commands (exec) that finished under 0.1 s.",
        "objective": 0.95,
        "window": "30d",
        "sli": {"kind": "latency", "metric": "vibebox_exec_seconds", "threshold": 0.1, "labels": {"kind": "exec"}},
    },
    "webhook_delivery": {
        "description": "Webhook deliveries delivered (not failed after their retries).",
        "objective": 0.99,
        "window": "30d",
        "sli": {
            "kind": "ratio",
            "metric": "vibebox_webhook_deliveries_total",
            "total": {"outcome": "delivered|failed"},  # a `retrying` attempt is neither
            "bad": {"outcome": "failed"},
        },
    },
}


def _slo_spec(name: str, spec) -> dict:
    """One SLO's spec, checked: a typo stops the server at start, never a 500 on the status page."""
    import re as _re

    from .units import parse_duration as _duration

    where = f"VIBEBOX_SLOS[{name!r}]"
    if not _re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name) or not isinstance(spec, dict):
        raise ImproperlyConfigured(f"{where}: an id of [a-z0-9_] and an object")
    objective, sli = spec.get("objective"), spec.get("sli")
    if not isinstance(objective, int | float) or isinstance(objective, bool) or not 0 < objective < 1:
        raise ImproperlyConfigured(f"{where}.objective must be a fraction between 0 and 1 (0.999 for 99.9 %)")
    try:
        if _duration(spec.get("window", "30d")) < 3600:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(f'{where}.window must be a duration of at least 1h (e.g. "30d")') from None
    if not isinstance(sli, dict) or sli.get("kind") not in ("ratio", "latency"):
        raise ImproperlyConfigured(f"{where}.sli needs kind (ratio or latency) and metric")
    if not isinstance(sli.get("metric"), str):
        raise ImproperlyConfigured(f"{where}.sli needs kind (ratio or latency) and metric")
    for key in ("good", "bad", "total", "labels"):
        matchers = sli.get(key, {})
        if not isinstance(matchers, dict) or not all(isinstance(v, str) for v in matchers.values()):
            raise ImproperlyConfigured(f"{where}.sli.{key} must map label names to regular expressions")
        for value in matchers.values():
            try:
                _re.compile(value)
            except _re.error:
                raise ImproperlyConfigured(f"{where}.sli.{key}: {value!r} is not a regular expression") from None
    if sli["kind"] == "ratio" and ("good" in sli) == ("bad" in sli):
        raise ImproperlyConfigured(f"{where}.sli: a ratio names either good or bad series")
    if sli["kind"] == "latency" and not isinstance(sli.get("threshold"), int | float):
        raise ImproperlyConfigured(f"{where}.sli.threshold: the histogram bucket bound, in seconds")
    return {"description": "", "window": "30d", **spec}


def _slos_from_env(defaults: dict) -> dict:
    import json as _json

    raw = env_str("VIBEBOX_SLOS", "").strip()
    slos = {name: dict(spec) for name, spec in defaults.items()}
    if raw:
        try:
            overrides = _json.loads(raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"VIBEBOX_SLOS is not valid JSON: {exc}") from None
        if not isinstance(overrides, dict):
            raise ImproperlyConfigured("VIBEBOX_SLOS is a JSON object: {id: spec or null}")
        for name, spec in overrides.items():
            if spec is None:
                slos.pop(name, None)
            elif isinstance(spec, dict):
                slos[name] = {**slos.get(name, {}), **spec}
            else:
                raise ImproperlyConfigured(f"VIBEBOX_SLOS[{name!r}]: an object, or null to drop it")
    return {name: _slo_spec(name, spec) for name, spec in slos.items()}


VIBEBOX_SLOS = _slos_from_env(VIBEBOX_SLOS)
# How often beat records the SLIs' event counts (apps.monitoring.slo.record_sli_samples), and how
# long the public status's component checks are kept per process (a caller cannot load the engine).
VIBEBOX_SLO_SAMPLE_INTERVAL = env_duration("VIBEBOX_SLO_SAMPLE_INTERVAL", "60s")
VIBEBOX_STATUS_CACHE_SECONDS = env_duration("VIBEBOX_STATUS_CACHE_SECONDS", "15s")
VIBEBOX_STATUS_CHECK_TIMEOUT = env_duration("VIBEBOX_STATUS_CHECK_TIMEOUT", "2s")
CELERY_IMPORTS = [*CELERY_IMPORTS, "apps.monitoring.slo"]
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] |= {
    "HealthStatusEnum": "apps.monitoring.api.serializers.STATUSES",
    "HealthComponentEnum": "apps.monitoring.api.serializers.COMPONENTS",
}
CELERY_BEAT_SCHEDULE["record-sli-samples"] = {
    "task": "apps.monitoring.slo.record_sli_samples",
    "schedule": VIBEBOX_SLO_SAMPLE_INTERVAL,
    "options": {"expires": VIBEBOX_SLO_SAMPLE_INTERVAL},
}
# Metrics (GET /metrics, Prometheus text format; apps/monitoring, docs/monitoring.md "Metrics").
# With a token, scrapers send `Authorization: Bearer <token>` (else 401); without one, only loopback
# clients are answered (else 403). Every process records into PROMETHEUS_MULTIPROC_DIR (an
# environment variable read by prometheus_client itself; `make run` sets and clears it).
INSTALLED_APPS += ["apps.monitoring"]  # a tier above webhooks, below the dashboard)
MIDDLEWARE.insert(0, "vibebox.metrics.HttpMetricsMiddleware")  # first: it times the whole chain
VIBEBOX_METRICS_TOKEN = env_str("VIBEBOX_METRICS_TOKEN", "")
# Per-sandbox series (vibebox_sandbox_cpu_seconds_total, _memory_bytes, _disk_bytes) carry a
# `sandbox` label while this is on and at most VIBEBOX_METRICS_PER_SANDBOX_MAX sandboxes are
# metered (running, paused, stopped); otherwise the label is "" and series are per template.
VIBEBOX_METRICS_PER_SANDBOX = env_bool("VIBEBOX_METRICS_PER_SANDBOX", True)
VIBEBOX_METRICS_PER_SANDBOX_MAX = env_int("VIBEBOX_METRICS_PER_SANDBOX_MAX", 1000)
# How long a scrape waits for the engine's and Redis's answers (then reports them down).
VIBEBOX_METRICS_PROBE_TIMEOUT = env_float("VIBEBOX_METRICS_PROBE_TIMEOUT", 0.5)
# The scrape-time gauges (database, engine, Redis, queues) are computed at most this often per web
# process; scrapes in between answer the same reading (0: every scrape computes them).
VIBEBOX_METRICS_SCRAPE_CACHE = env_duration("VIBEBOX_METRICS_SCRAPE_CACHE", "1s")
# vibebox_build_info's version label; empty: the API version and the checkout's commit.
VIBEBOX_VERSION = env_str("VIBEBOX_VERSION", "")
# The GraphQL API at /graphql (apps/graphql_api, docs/graphql.md "Limits"): a tier above monitoring.
INSTALLED_APPS += ["apps.graphql_api"]
VIBEBOX_GRAPHQL_MAX_DEPTH = env_int("VIBEBOX_GRAPHQL_MAX_DEPTH", 10)  # nested selections per query
VIBEBOX_GRAPHQL_MAX_COST = env_int("VIBEBOX_GRAPHQL_MAX_COST", 5000)  # fields, times the pages they ask for
VIBEBOX_GRAPHQL_MAX_MUTATIONS = env_int("VIBEBOX_GRAPHQL_MAX_MUTATIONS", 10)  # writes in one document
VIBEBOX_GRAPHQL_MAX_PAGE_SIZE = env_int("VIBEBOX_GRAPHQL_MAX_PAGE_SIZE", 100)  # a connection's `first`
VIBEBOX_GRAPHQL_INTROSPECTION = env_bool("VIBEBOX_GRAPHQL_INTROSPECTION", True)  # __schema / __type (GraphiQL's)
VIBEBOX_GRAPHQL_PERSISTED_QUERIES = env_bool("VIBEBOX_GRAPHQL_PERSISTED_QUERIES", True)  # Apollo's APQ
VIBEBOX_GRAPHQL_PERSISTED_QUERY_TTL = env_int("VIBEBOX_GRAPHQL_PERSISTED_QUERY_TTL", 7 * 86400)  # seconds kept

# ---- Nodes: Docker engines beside the local one (docs/nodes.md) ----
# How often each registered node's engine is checked, how long a check may take, and after how many
# failed checks in a row a healthy node is marked down (it is healthy again at its next answer).
VIBEBOX_NODE_CHECK_INTERVAL = env_duration("VIBEBOX_NODE_CHECK_INTERVAL", "30s")
VIBEBOX_NODE_CHECK_TIMEOUT = env_duration("VIBEBOX_NODE_CHECK_TIMEOUT", "10s")
VIBEBOX_NODE_DOWN_AFTER = env_int("VIBEBOX_NODE_DOWN_AFTER", 3)
# Placement of new sandboxes (apps/sandboxes/services/placement.py): the share of each engine's
# memory kept free for the engine and the OS (0.1: 10 %), and how long a node's list of template
# images is kept by each process before it is asked again.
VIBEBOX_NODE_MEMORY_RESERVE = env_float("VIBEBOX_NODE_MEMORY_RESERVE", 0.1)
VIBEBOX_NODE_IMAGES_TTL = env_duration("VIBEBOX_NODE_IMAGES_TTL", "30s")
# Placement by CPU (docs/nodes.md, "Placement"): the CPUs an engine's sandboxes may ask for in all,
# as a multiple of its CPUs (CPU limits are quotas, not reservations: 4 lets four busy sandboxes of 1
# CPU share each core); the local engine's labels, which a create's nodeLabels may ask for
# ("region=eu,disk=ssd"; the local engine has no row).
VIBEBOX_NODE_CPU_OVERCOMMIT = env_float("VIBEBOX_NODE_CPU_OVERCOMMIT", 4.0)
VIBEBOX_LOCAL_NODE_LABELS = dict(item.partition("=")[::2] for item in env_list("VIBEBOX_LOCAL_NODE_LABELS", []))
# Back links (docs/nodes.md, "The server's services from a node"): server connections the egress
# proxy process keeps parked at each node's relay per service (model gateway, egress proxy); 0: none.
VIBEBOX_NODE_BACK_LINKS = env_int("VIBEBOX_NODE_BACK_LINKS", 4)
# rotatenode (docs/nodes.md, "Rotating the relay's credentials"): how long every process may go on
# using a node's row it read before the row changed (back links read the rows every 15 s, previews
# keep a sandbox's relay for 2 s, a sandboxd call retries for 10 s); the relay stops accepting a
# row's credentials only this long after the row that replaces them was written.
VIBEBOX_NODE_ROTATION_GRACE = env_duration("VIBEBOX_NODE_ROTATION_GRACE", "30s")
CELERY_BEAT_SCHEDULE["check-nodes"] = {
    "task": "apps.sandboxes.tasks.check_nodes",
    "schedule": VIBEBOX_NODE_CHECK_INTERVAL,
    "options": {"expires": VIBEBOX_NODE_CHECK_INTERVAL},
}
# How often every healthy node is given the template images it lacks (besides when a template is
# published and when a node is added or back: docs/nodes.md, "Shipping images to nodes").
VIBEBOX_NODE_IMAGE_SYNC_INTERVAL = env_duration("VIBEBOX_NODE_IMAGE_SYNC_INTERVAL", "10m")
CELERY_BEAT_SCHEDULE["sync-node-images"] = {
    "task": "apps.sandboxes.tasks.sync_node_images",
    "schedule": VIBEBOX_NODE_IMAGE_SYNC_INTERVAL,
    "options": {"expires": VIBEBOX_NODE_IMAGE_SYNC_INTERVAL},
}
