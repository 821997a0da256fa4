"""Gavel settings, read from the environment (12-factor, django-environ).

The defaults run the demo on an embedded SQLite database, with Celery's broker in a SQLite file beside it
(a worker and beat that ``demo_serve`` starts run its tasks).
Production (``DEBUG`` off) refuses to start without a real ``SECRET_KEY``, ``ALLOWED_HOSTS``
and ``GAVEL_PII_KEYS``.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core.logs import logging_config, structlog_configure

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "gavel-dev-only-secret-key-not-for-production"  # noqa: S105  # nosec B105
# A dev Fernet key, public on purpose: it only ever protects demo data.
_DEV_PII_KEY = "Z2F2ZWwtZGV2LXBpaS1rZXktMzItYnl0ZXMtbG9uZyE="

SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
GAVEL_PII_KEYS = env.list("GAVEL_PII_KEYS", default=[_DEV_PII_KEY] if DEBUG else [])

if not DEBUG:
    if not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("Set SECRET_KEY to a random string of 32+ characters (or DEBUG=1).")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("Set ALLOWED_HOSTS to the exchange's host names (or DEBUG=1).")
    if not GAVEL_PII_KEYS or _DEV_PII_KEY in GAVEL_PII_KEYS:
        raise ImproperlyConfigured("Set GAVEL_PII_KEYS to your own Fernet keys (or DEBUG=1).")

GAVEL_CURRENCY = env.str("GAVEL_CURRENCY", default="USD")
# The audit trail (django-auditlog): entries are accounts.AuditEntry, read through the base manager
# (the default ones are tenant-scoped), never with a copy of the whole row.
AUDITLOG_LOGENTRY_MODEL = "accounts.AuditEntry"
AUDITLOG_USE_BASE_MANAGER = True
# auditlog's own migrations would create its unused (swapped) table, whose foreign key to users
# then blocks flushing the database; with none, nothing of it is created.
MIGRATION_MODULES = {"auditlog": None}
AUDITLOG_DISABLE_REMOTE_ADDR = False
GAVEL_RTB_BREAKER_FAILURES = env.int("GAVEL_RTB_BREAKER_FAILURES", default=5)
# A paused contract is retried after the cool-down, doubled on each trip in a row, up to the max.
GAVEL_RTB_BREAKER_COOLDOWN_SECONDS = env.int("GAVEL_RTB_BREAKER_COOLDOWN_SECONDS", default=60)
GAVEL_RTB_BREAKER_COOLDOWN_MAX_SECONDS = env.int("GAVEL_RTB_BREAKER_COOLDOWN_MAX_SECONDS", default=3600)
# The delivery-reject watch: a contract is held when the offer's reject_rate_hold_percent of its
# deliveries over this window were rejected, once it made this many.
GAVEL_REJECT_RATE_WINDOW_HOURS = env.int("GAVEL_REJECT_RATE_WINDOW_HOURS", default=24)
GAVEL_REJECT_RATE_MIN_DELIVERIES = env.int("GAVEL_REJECT_RATE_MIN_DELIVERIES", default=20)
# Overrides every offer's reauction_delay_seconds when set (the demo, tests); unset: the offer's.
GAVEL_REAUCTION_DELAY_S = env.int("GAVEL_REAUCTION_DELAY_S", default=None)
# Raw pings (and their bids) older than this are deleted unless a lead or a sale refers to them;
# the hourly rollups keep their figures (reporting, decision 47).
GAVEL_PING_RETENTION_DAYS = env.int("GAVEL_PING_RETENTION_DAYS", default=90)
# Leads' personal data (contact details, consent IP and user agent, delivery logs) is purged this
# many days after the lead arrived (checked hourly); 0 keeps it forever. Money, counts and statuses stay.
GAVEL_PII_RETENTION_DAYS = env.int("GAVEL_PII_RETENTION_DAYS", default=365)
GAVEL_ALLOW_PRIVATE_URLS = env.bool("GAVEL_ALLOW_PRIVATE_URLS", default=DEBUG)
# The TrustedForm/Jornaya certificate verifier (exchange/consent_verify.py): off when the URL is empty.
GAVEL_CONSENT_VERIFIER_URL = env.str("GAVEL_CONSENT_VERIFIER_URL", default="")
GAVEL_CONSENT_VERIFIER_TOKEN = env.str("GAVEL_CONSENT_VERIFIER_TOKEN", default="")
GAVEL_CONSENT_VERIFIER_TIMEOUT_MS = env.int("GAVEL_CONSENT_VERIFIER_TIMEOUT_MS", default=2000)
# The hosted form (/f/<campaign id>): a submission faster than this after the page was served is a bot's.
GAVEL_FORM_MIN_SECONDS = env.int("GAVEL_FORM_MIN_SECONDS", default=3)
# /readyz: each check (database, Redis, broker) gives up after this many seconds (exchange/probes.py).
GAVEL_READYZ_TIMEOUT_S = env.float("GAVEL_READYZ_TIMEOUT_S", default=2.0)
# /metrics answers staff sessions and `Authorization: Bearer <this token>` (Prometheus); empty: staff only.
GAVEL_METRICS_TOKEN = env.str("GAVEL_METRICS_TOKEN", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # sign-in lockout (accounts/lockout.py)
    "pgtrigger",  # PostgreSQL triggers that guard the ledger and consent records (none on SQLite)
    "auditlog",  # the audit trail; its entry model is accounts.AuditEntry (core/audit.py)
    "accounts",
    "exchange",
    "contracts",
    "leads",
    "billing",
    "reporting",
    "demo",  # simulated buyers and sellers, `manage.py demo_serve` (no models)
]

MIDDLEWARE = [
    "core.logs.RequestIdMiddleware",  # first: every log line of the request carries its id
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.TenantScopeMiddleware",
    "accounts.middleware.AuditContextMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked sign-in into accounts.lockout.login_locked
]

# Sign-in lockout (django-axes, accounts/lockout.py): 5 failures for one account lock it 15 minutes.
AUTHENTICATION_BACKENDS = ["accounts.lockout.LoginLockoutBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.login_locked"
AXES_RESET_ON_SUCCESS = True  # a success forgets the failures before it
# A sign-in tried while locked neither counts nor extends the lock: it ends when the page said.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_VERBOSE = False
# axes.W006 asks for the address in the lock too; locking the account alone is the point (a guesser
# rotating addresses is stopped all the same), so an attacker's address never unlocks it.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

ROOT_URLCONF = "exchange.urls"
WSGI_APPLICATION = "exchange.wsgi.application"
ASGI_APPLICATION = "exchange.asgi.application"

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
                "accounts.context_processors.tenant",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo serves and simulates traffic at once: wait for the write lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
else:
    # Prepared statements for the ping's hot statements (exchange/sql.py); empty turns them off.
    DATABASES["default"].setdefault("OPTIONS", {})
    prepare_threshold = env.str("DB_PREPARE_THRESHOLD", default="5")
    DATABASES["default"]["OPTIONS"].setdefault(
        "prepare_threshold", int(prepare_threshold) if prepare_threshold else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Without Redis, Celery's broker is embedded: kombu's SQLAlchemy transport on a SQLite file that
# belongs to the database its tasks refer to (beside a SQLite database, named as SQLite names its
# own side files; in var/ for another database), so queued and delayed tasks survive a restart and
# never reach a worker of another database. `demo_serve` starts a worker and beat beside the server
# (docs/decisions.md, "The embedded default runs the whole product").
CELERY_BROKER_URL = REDIS_URL
if not REDIS_URL:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        _TASKS_FILE = f"{DATABASES['default']['NAME']}-tasks"
    else:
        _TASKS_FILE = str(BASE_DIR / "var" / f"tasks-{DATABASES['default']['NAME']}.sqlite3")
    CELERY_BROKER_URL = f"sqla+sqlite:///{_TASKS_FILE}"
    # The web, the worker and beat share the file: wait for its write lock as the database does.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"connect_args": {"timeout": 20}}
    CELERY_BEAT_SCHEDULE_FILENAME = f"{_TASKS_FILE}-beat"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "gavel"
# Every periodic task, in one place (`celery -A exchange beat`; demo_serve starts one). A test
# checks that every task taking no arguments is here.
CELERY_BEAT_SCHEDULE = {
    "exchange.webhook_deliveries_due": {"task": "exchange.webhook_deliveries_due", "schedule": 60.0},
    "reporting.postbacks_due": {"task": "reporting.postbacks_due", "schedule": 60.0},
    "leads.work_due": {"task": "leads.work_due", "schedule": 5 * 60.0},
    "exchange.market_sweep": {"task": "exchange.market_sweep", "schedule": 5 * 60.0},
    "exchange.idempotency_records_purge": {"task": "exchange.idempotency_records_purge", "schedule": 60 * 60.0},
    "billing.ledger_reconcile": {"task": "billing.ledger_reconcile", "schedule": 15 * 60.0},
    "exchange.return_windows_close": {"task": "exchange.return_windows_close", "schedule": 60 * 60.0},
    "exchange.pings_prune": {"task": "exchange.pings_prune", "schedule": 60 * 60.0},
    "exchange.leads_pii_purge": {"task": "exchange.leads_pii_purge", "schedule": 60 * 60.0},
    "reporting.rollups_fold": {"task": "reporting.rollups_fold", "schedule": 30.0},
    "exchange.campaign_rates_refresh": {"task": "exchange.campaign_rates_refresh", "schedule": 15 * 60.0},
}

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"
# Invitations to join an organization go out by email. The default prints each message on the
# server's console (the demo and development; the owner's page also shows the link once);
# production sets EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587 (django-environ's
# email URL), or EMAIL_BACKEND to any Django email backend.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Gavel <gavel@localhost>")
# An invitation link works this long, once.
GAVEL_INVITATION_DAYS = env.int("GAVEL_INVITATION_DAYS", default=7)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)

# Behind a TLS-terminating proxy (docs/deployment.md). The header the proxy sets to "https" on
# requests that came over TLS, e.g. X-Forwarded-Proto: without it, Django takes every request
# for plain HTTP and refuses each portal POST's https Origin. Set it only behind a proxy that
# overwrites the header, or a client could claim TLS itself.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
# Origins, besides the request's own host, that may POST to the portal and admin (scheme and host,
# e.g. https://gavel.example): needed when the proxy passes another Host than the public one.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers' probes come over plain HTTP from inside (paths without the leading slash).
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^healthz$", r"^readyz$"])
# HSTS is a promise browsers keep for its whole duration: opt in (docs/deployment.md).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "exchange.api.negotiation.AnyFirstNegotiation",
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JsonObjectParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "exchange.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "exchange.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Gavel exchange API",
    "DESCRIPTION": """
Sell and buy leads on a Gavel exchange. [← Back to the portal](/portal/) — each of your campaigns' pages
there shows these calls with your own campaign id and fields, and a test console.

**Authenticate** every call with an API key of your organization: `Authorization: Bearer gvl_…`
(or `X-API-Key: gvl_…`). Sellers' keys need the `leads` scope; buyers' keys `purchases` and
`contracts`.

**Sell a lead in two steps (ping-post).**
1. `POST /api/v1/ping` with your campaign id and the offer's *ping fields only* — no PII — plus
   `consumer.email_sha256` / `consumer.phone_sha256`: the SHA-256 hex of the email trimmed and
   lower-cased, and of the phone in E.164 (`+14155550100`). Every eligible buyer bids at once; the
   answer says `accepted` with your `payout` (what you earn if the post sells) and `expires_at`,
   or `rejected` with a reason (`no_buyers`, `duplicate`, `suppressed`, `below_min_score`).
2. `POST /api/v1/post` with the `ping_id`, the full lead (the same ping fields, plus the PII
   that hashes to the ping's `consumer`) and the consent record, before `expires_at`. The answer
   is `sold` with your payout, `unsold`, `rejected`, or `pending` (the lead is being re-routed in
   the background: the final state comes by event webhook and by `GET /api/v1/leads/{lead_id}`).

Or **sell in one call**: `POST /api/v1/leads` with the full lead.

**Money** is a string with two decimals (`"24.00"`). **Retries** are safe with an
`Idempotency-Key` header on any POST (kept 24 h). **Test mode** (`"test": true`) runs the whole
path and charges nothing. **Errors** look like
`{"error": {"code": "validation_error", "message": "…", "fields": {"lead.zip": ["…"]}}}`:
400 `malformed_json`, 401 `authentication_failed`, 403 `permission_denied`, 404 `not_found`,
409 `ping_already_posted`, 410 `ping_expired`, 413 `payload_too_large`, 422 `validation_error`
or `ping_mismatch`, 429 `rate_limited` (each key may make its organization's
`rate_limit_per_second` requests a second, 50 by default; wait the `Retry-After` header's
seconds). A business outcome (no buyer, duplicate) is never an error.
"""
    + f"""
**Money.** Every amount (prices, payouts, balances) is a decimal string with two decimals, in this
exchange's one currency: **{GAVEL_CURRENCY}** (ISO 4217, set by `GAVEL_CURRENCY`).
""",
    "EXTENSIONS_INFO": {"x-currency": GAVEL_CURRENCY},
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "exchange.api.docs.errors_and_examples"],
    "ENUM_NAME_OVERRIDES": {
        "PingStatusEnum": ["accepted", "rejected"],
        "LeadStatusEnum": ["sold", "unsold", "pending", "rejected"],
        "ActivityStatusEnum": [("active", "Active"), ("paused", "Paused")],
    },
}

# Structured logs (core/logs.py): JSON lines in production, a readable console in development;
# every line of a request, and of the tasks it enqueued, carries its X-Request-ID.
LOG_JSON = env.bool("LOG_JSON", default=not DEBUG)
LOGGING = logging_config(json=LOG_JSON, level=env.str("LOG_LEVEL", default="INFO"))
structlog_configure()
# The worker logs through the same configuration, not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
