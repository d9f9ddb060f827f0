"""Settings for the MLOps control plane.

Everything that differs between a laptop and production comes from environment
variables with safe defaults; docs/configuration.md lists them all.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}.")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {value!r}.")


# The development key: for `make run` and the tests only. Without DJANGO_SECRET_KEY the site is in development
# mode (debug on unless DJANGO_DEBUG=0, which is refused below); with a key of its own, debug is off unless asked.
DEV_SECRET_KEY = "django-insecure-dev-key-change-me-in-production-0123456789"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or DEV_SECRET_KEY
DEBUG = env_bool("DJANGO_DEBUG", SECRET_KEY == DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set (or is the development key): set DJANGO_SECRET_KEY to a "
        "long random value of your own (python -c 'from django.core.management.utils import get_random_secret_key; "
        "print(get_random_secret_key())'), or leave DJANGO_DEBUG unset for a development run."
    )
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h.strip()]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto, requests it forwarded count as https (absolute
# links say https, secure cookies and the SSL redirect work); never set it without such a proxy in front.
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Production (debug off) is https only: secure session and CSRF cookies, http redirected to https, HSTS.
# MLOPS_INSECURE_HTTP=1 turns all of that off for a local production-like try over http (`make serve` on 127.0.0.1).
HTTPS_ONLY = not DEBUG and not env_bool("MLOPS_INSECURE_HTTP", False)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS_ONLY)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
# The Content Security Policy (mlops_site.middleware): scripts, styles and requests from this site only, no inline
# script, event handler or style attribute, no framing. MLOPS_CSP replaces it; MLOPS_CSP_EXTRA adds sources to it
# (e.g. "img-src https://cdn.example.com; connect-src https://errors.example.com"); MLOPS_CSP="" sends none.
# plotly.js sets two fixed style attributes (a colour bar's empty style, a heatmap's image-rendering declarations):
# style-src-attr allows exactly those two values by their hashes, and no other style attribute.
CSP_DEFAULT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-hashes' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' 'sha256-AR/cKIZjWPcPmBUPDA6oti9XBiTbJvz0Cro2J1VzzS8='; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
MLOPS_CSP = os.environ.get("MLOPS_CSP", CSP_DEFAULT)
MLOPS_CSP_EXTRA = os.environ.get("MLOPS_CSP_EXTRA", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",  # login lockout after repeated failures
    "registry",
    "monitoring",
    "experiments",
    "demo",  # demo data and traffic commands; the apps never import it
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "mlops_site.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mlops_site.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mlops_site.urls"
WSGI_APPLICATION = "mlops_site.wsgi.application"

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
                "mlops_site.roles.roles_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# SQLite (WAL, busy timeout, IMMEDIATE transactions) unless DATABASE_URL says otherwise.
SQLITE_PATH = os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{SQLITE_PATH}", conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of
        # failing with "database is locked" when the second one tries to upgrade.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not :memory:, so a real Celery worker and live_server threads share it.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_PATH", "/tmp/mlops-test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's four validators: at least 12 characters, not like the username or e-mail, not one of the 20,000 most
# common passwords, not all digits. Every path that sets a password checks them (create_api_user, changepassword,
# createsuperuser, the admin's forms).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Logins: after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is locked out for
# AXES_COOLOFF_MINUTES (even with the right password), answered 429; a successful login resets the count. The address
# is REMOTE_ADDR, or behind MLOPS_PROXY_COUNT reverse proxies the entry of X-Forwarded-For the outermost one wrote
# (mlops_site/client_ip.py: a client-set X-Forwarded-For is never trusted, or a guesser could pick a fresh address per try).
# The axes backend comes first: it refuses a locked-out pair before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
MLOPS_PROXY_COUNT = env_int("MLOPS_PROXY_COUNT", 0)
if MLOPS_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"MLOPS_PROXY_COUNT must be 0 (no proxy) or the number of reverse proxies in front; got {MLOPS_PROXY_COUNT}.")
AXES_CLIENT_IP_CALLABLE = "mlops_site.client_ip.client_ip"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static and media -------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "mlops_site.finders.PlotlyJSFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # The manifest storage needs collectstatic first; only production (`make serve`) runs it.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("MLOPS_MANIFEST_STATIC", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
WHITENOISE_USE_FINDERS = True
# Without collectstatic (dev, tests) whitenoise serves through the finders; its warning is noise.
warnings.filterwarnings("ignore", message="No directory at")
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "/media/"
# Artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...) through django-storages instead of MEDIA_ROOT.
# Credentials are boto3's own: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, or an instance role.
# Downloads go through the site (the API checks the role first), so the bucket stays private.
MLOPS_S3_BUCKET = os.environ.get("MLOPS_S3_BUCKET", "").strip()
if MLOPS_S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MLOPS_S3_BUCKET,
            "endpoint_url": os.environ.get("MLOPS_S3_ENDPOINT_URL", "").strip() or None,  # MinIO and others; unset for AWS
            "region_name": os.environ.get("MLOPS_S3_REGION", "").strip() or None,
            "location": os.environ.get("MLOPS_S3_PREFIX", "").strip().strip("/"),  # a folder inside the bucket
            "addressing_style": os.environ.get("MLOPS_S3_ADDRESSING_STYLE", "").strip() or None,  # "path" for most MinIO
            "signature_version": "s3v4",  # what MinIO and every AWS region accept
            "default_acl": None,  # the bucket's own policy: private
            "file_overwrite": False,  # as on disk: a name taken gets a suffix, never replaces a stored artifact
        },
    }

# Uploads: artifacts above this size are refused with 413 before they are stored.
MLOPS_MAX_ARTIFACT_BYTES = env_int("MLOPS_MAX_ARTIFACT_MB", 512) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MLOPS_MAX_JSON_MB", 32) * 1024 * 1024
# Distinct feature names an event batch may name, and a model version may hold (each one is a column).
MLOPS_MAX_FEATURES = env_int("MLOPS_MAX_FEATURES", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
# Pending promotion requests older than this expire (a beat task).
MLOPS_PROMOTION_TTL_DAYS = env_int("MLOPS_PROMOTION_TTL_DAYS", 14)
# The task an approved canary promotion queues (by name: the registry never imports experiments).
MLOPS_ROLLOUT_START_TASK = "experiments.tasks.rollout_start"
MLOPS_PAGE_SIZE = env_int("MLOPS_PAGE_SIZE", 50)
# Prompt environments a request moves at once, without a second person (comma-separated; "" for none).
MLOPS_PROMPT_DIRECT_ENVIRONMENTS = [e.strip() for e in os.environ.get("MLOPS_PROMPT_DIRECT_ENVIRONMENTS", "dev").split(",") if e.strip()]
MLOPS_PROMPT_MAX_FILE_BYTES = env_int("MLOPS_PROMPT_MAX_FILE_KB", 256) * 1024
MLOPS_EVAL_SET_MAX_BYTES = env_int("MLOPS_EVAL_SET_MAX_MB", 20) * 1024 * 1024
MLOPS_PROMPT_ARCHIVE_MAX_BYTES = env_int("MLOPS_PROMPT_ARCHIVE_MAX_MB", 100) * 1024 * 1024

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an anonymous request gets 401 with WWW-Authenticate, not 403. `Token <key>` or `Bearer <key>`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mlops_site.roles.IsViewer"],
    "DEFAULT_PARSER_CLASSES": [
        "mlops_site.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "mlops_site.pagination.PageNumberPagination",
    "PAGE_SIZE": MLOPS_PAGE_SIZE,
    "EXCEPTION_HANDLER": "mlops_site.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps control plane API",
    "DESCRIPTION": "Model registry, promotions with four-eyes approval, rollback and audit.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "StageEnum": "registry.models.Stage",
        "PromotableStageEnum": [("staging", "staging"), ("production", "production")],
        "PromotionStatusEnum": "registry.models.PromotionStatus",
        "AuditActionEnum": "registry.models.AuditAction",
        "ExperimentStatusEnum": "experiments.models.ExperimentStatus",
        "AnalysisStatusEnum": "experiments.models.AnalysisStatus",
        "MetricKindEnum": "experiments.models.MetricKind",
        "RecommendationEnum": "experiments.models.Recommendation",
        "DecisionEnum": "experiments.models.Decision",
        "ComparisonStateEnum": [("ok", "ok"), ("not_enough_data", "not_enough_data")],
        "GuardrailMetricEnum": "experiments.models.GuardrailMetric",
        "EnvironmentEnum": "registry.models.Environment",
        "EvaluationKindEnum": "registry.models.EvaluationKind",
        "UploadEvaluationKindEnum": [("model", "model"), ("data", "data")],
        "AlertMetricEnum": "monitoring.models.AlertMetric",
        "AlertActionEnum": "monitoring.models.AlertAction",
        "GuardrailStateEnum": "experiments.models.GuardrailState",
        "ColumnKindEnum": [("numeric", "numeric"), ("categorical", "categorical")],
        "PromotionStrategyEnum": "registry.models.PromotionStrategy",
        "RolloutStatusEnum": "experiments.models.RolloutStatus",
        "RolloutTriggerMetricEnum": "experiments.api.serializers.TRIGGER_METRICS",
        "RolloutTriggerActionEnum": "experiments.api.serializers.TRIGGER_ACTIONS",
        "RolloutActionEnum": "experiments.api.serializers.ROLLOUT_ACTIONS",
        "RolloutGateEnum": "experiments.api.serializers.GATE_NAMES",
        "RolloutCheckStateEnum": "experiments.api.serializers.CHECK_STATES",
        "RolloutHealthEnum": "experiments.api.serializers.HEALTH_STATES",
        "TokenStateEnum": "registry.api.tokens.TOKEN_STATES",
    },
    "SERVE_PERMISSIONS": ["mlops_site.roles.IsViewer"],
}

# --- Celery -----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# The queue every task is sent to (and a worker started without -Q consumes): two sites sharing one Redis keep apart.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Evaluations (a prompt over its eval set through an LLM, a large predictions file) have a queue of their own,
# named after the default one (two sites on one Redis stay apart), so a long one never delays ingestion, reports
# or the canary controller: run a worker per queue (docs/deploy.md).
MLOPS_EVALUATIONS_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-evaluations"
CELERY_TASK_ROUTES = {"registry.tasks.evaluation_compute": {"queue": MLOPS_EVALUATIONS_QUEUE}}
# Every task stops: past the soft limit the task is interrupted (SoftTimeLimitExceeded; a run ends failed with
# the reason), past the hard one its worker process is replaced. Tasks that legitimately run longer set their own.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Fail fast when Redis is down: the caller records the work as pending and a sweep retries it.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BEAT_SCHEDULE = {
    "registry-expire-stale-promotions": {"task": "registry.tasks.promotions_expire_stale", "schedule": 3600.0},
    "registry-evaluations-sweep": {"task": "registry.tasks.evaluations_sweep", "schedule": 600.0},
    "registry-webhook-deliveries": {"task": "registry.tasks.webhook_deliveries_sweep", "schedule": 60.0},
    "monitoring-hourly-drift": {"task": "monitoring.tasks.drift_reports_schedule", "schedule": 3600.0, "kwargs": {"hours": 1}},
    "monitoring-daily-drift": {"task": "monitoring.tasks.drift_reports_schedule", "schedule": 86400.0, "kwargs": {"hours": 24}},
    "monitoring-stuck-work-sweep": {"task": "monitoring.tasks.stuck_work_sweep", "schedule": 600.0},
    "monitoring-budgets": {"task": "monitoring.tasks.budgets_evaluate", "schedule": 300.0},
    "monitoring-rollups": {"task": "monitoring.tasks.rollups_update_task", "schedule": 60.0},
    "monitoring-ops-alerts": {"task": "monitoring.tasks.ops_alerts_evaluate", "schedule": 60.0},
    "monitoring-performance": {"task": "monitoring.tasks.performance_windows_schedule", "schedule": 3600.0},
    "experiments-analyses": {"task": "experiments.tasks.analyses_schedule", "schedule": 3600.0},
    "experiments-rollouts-tick": {"task": "experiments.tasks.rollouts_tick", "schedule": 60.0},
}

# --- Cache ------------------------------------------------------------------
# Small values every web process and worker shares, on the same Redis: A/B assignment reads an experiment's
# variants from here on every request. Short socket timeouts: with Redis down a read costs 0.2 s at most and
# the code falls back to the database.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": "mlops",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}

# Alerts: where the default rules notify (each rule can override), and how mail goes out.
MLOPS_ALERT_WEBHOOK_URL = os.environ.get("MLOPS_ALERT_WEBHOOK_URL", "")
MLOPS_ALERT_WEBHOOK_SECRET = os.environ.get("MLOPS_ALERT_WEBHOOK_SECRET", "")
MLOPS_ALERT_EMAILS = os.environ.get("MLOPS_ALERT_EMAILS", "")
# Hosts (or host:port) a webhook may reach although they resolve to a loopback, private, link-local or reserved
# address (a receiver inside the network); every other such target is refused when set and when sent.
MLOPS_WEBHOOK_ALLOWED_HOSTS = [h.strip().lower() for h in os.environ.get("MLOPS_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()]
# This site's address as its users reach it ("https://mlops.example.com"): registry webhooks link to its pages with it
# (empty: the links are paths, "/models/fraud/versions/3/").
MLOPS_SITE_URL = os.environ.get("MLOPS_SITE_URL", "")
# Quality gates: whether a newly created model or prompt gets the default gate policy (accuracy >= 0.92,
# F1 >= 0.9, demographic parity difference <= 0.1, no schema violation; prompts: format, relevance, safety).
MLOPS_GATE_POLICY_FOR_NEW = os.environ.get("MLOPS_GATE_POLICY_FOR_NEW", "0") == "1"
# Prompt evaluations through an OpenAI-compatible API (empty: only the offline replay provider), and an LLM judge.
MLOPS_LLM_BASE_URL = os.environ.get("MLOPS_LLM_BASE_URL", "")
MLOPS_LLM_API_KEY = os.environ.get("MLOPS_LLM_API_KEY", "")
MLOPS_LLM_MODEL = os.environ.get("MLOPS_LLM_MODEL", "")
MLOPS_JUDGE_MODEL = os.environ.get("MLOPS_JUDGE_MODEL", "")
MLOPS_LLM_TIMEOUT_S = env_int("MLOPS_LLM_TIMEOUT_S", 60)
# What an evaluation's LLM calls (the prompt's and the judge's) cost: a factory of (model, input, output tokens) -> USD over
# the price table (monitoring's, which registry may not import: the wiring is here). Empty: calls have no cost.
MLOPS_LLM_PRICING = "monitoring.selectors.prices.llm_call_pricing"

# Operations alert defaults: the latency SLA of a model (P95, ms) and the capacity its throughput is compared with.
MLOPS_LATENCY_SLA_MS = env_int("MLOPS_LATENCY_SLA_MS", 500)
MLOPS_CAPACITY_RPS = env_int("MLOPS_CAPACITY_RPS", 100)
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
if os.environ.get("EMAIL_FILE_PATH"):  # the directory of django.core.mail.backends.filebased.EmailBackend
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
# SMTP login and encryption: STARTTLS on the submission port (587) or TLS from the first byte (465), not both.
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS (STARTTLS, port 587) and EMAIL_USE_SSL (TLS, port 465) exclude each other: set one.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)  # seconds; a hung mail server never holds a worker longer
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "mlops@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes: failed logins and lockouts are warnings; its start-up banner and each successful login are not logged.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
