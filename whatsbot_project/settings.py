"""whatsbot settings: everything comes from the environment (or an optional `.env`).

With nothing configured a fresh clone runs on embedded defaults: SQLite, an in-memory Celery
broker with a worker inside the `run` process, an in-memory channel layer, the offline
responder and no provider credentials. Every setting is listed in README.md.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_INSECURE_DEV_KEY = "django-insecure-dev-only-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random value "
            '(python -c "import secrets; print(secrets.token_urlsafe(50))"), '
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = _INSECURE_DEV_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The URL the outside world (Meta, Twilio, ngrok) uses to reach this app. Twilio signs the URL
# it requested, so behind a proxy the signature only checks against this public URL.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "profiles",
    "conversations",
    "channels_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "whatsbot_project.urls"
WSGI_APPLICATION = "whatsbot_project.wsgi.application"
ASGI_APPLICATION = "whatsbot_project.asgi.application"

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
            ],
        },
    },
]

# --- Database: SQLite file by default, PostgreSQL (or anything dj-database-url knows) by URL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The in-process worker and the web server write concurrently: WAL and a busy timeout
    # turn "database is locked" into a short wait.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Meta sends webhook payloads of up to 3 MB; anything larger is refused with 413, on ASGI even
# when Content-Length is missing or understated (Django counts the bytes as it reads them).
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

# --- Redis: Celery broker and channel layer when set; in-memory otherwise.
REDIS_URL = env.str("REDIS_URL", default="")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = False  # opted into per task, only on the idempotent ones
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A webhook enqueues after commit and must not hang on a broker that is down: fail fast, the
# periodic sweep finds the message in the database later.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 0,  # publishers: one connection attempt, no reconnect loop
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    "visibility_timeout": 3600,
}
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-messages": {
        "task": "conversations.tasks.requeue_stalled_messages",
        "schedule": env.int("SWEEP_INTERVAL_SECONDS", default=60),
    },
}
# How long a message may sit unprocessed (or a send in flight) before the sweep acts on it.
SWEEP_STALE_AFTER_SECONDS = env.int("SWEEP_STALE_AFTER_SECONDS", default=120)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- The model.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-5-mini")
OPENAI_PROMPT_ID = env.str("OPENAI_PROMPT_ID", default="")
OPENAI_STORE = env.bool("OPENAI_STORE", default=False)
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=30.0)
OPENAI_MAX_OUTPUT_TOKENS = env.int("OPENAI_MAX_OUTPUT_TOKENS", default=800)
# Total model calls per reply, first try included (the SDK's own retries are switched off so
# this is the one cap).
OPENAI_MAX_ATTEMPTS = env.int("OPENAI_MAX_ATTEMPTS", default=4)

BOT_INSTRUCTIONS = env.str(
    "BOT_INSTRUCTIONS",
    default=(
        "You are the friendly customer-service assistant of this business on WhatsApp. "
        "Answer briefly and accurately, in the customer's language. If you do not know "
        "something, say so and offer to have a person follow up."
    ),
)
BOT_INSTRUCTIONS_FILE = env.str("BOT_INSTRUCTIONS_FILE", default="")
CONTEXT_MAX_MESSAGES = env.int("CONTEXT_MAX_MESSAGES", default=20)

# --- Providers.
WHATSAPP_VERIFY_TOKEN = env.str("WHATSAPP_VERIFY_TOKEN", default="")
WHATSAPP_APP_SECRET = env.str("WHATSAPP_APP_SECRET", default="")
WHATSAPP_ACCESS_TOKEN = env.str("WHATSAPP_ACCESS_TOKEN", default="")
WHATSAPP_PHONE_NUMBER_ID = env.str("WHATSAPP_PHONE_NUMBER_ID", default="")
WHATSAPP_GRAPH_URL = env.str("WHATSAPP_GRAPH_URL", default="https://graph.facebook.com")
WHATSAPP_API_VERSION = env.str("WHATSAPP_API_VERSION", default="v25.0")

TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_API_URL = env.str("TWILIO_API_URL", default="https://api.twilio.com")
# Only for webhooks signed with a Twilio webhook SharedKey (public beta) instead of the token.
TWILIO_WEBHOOK_SHARED_KEY = env.str("TWILIO_WEBHOOK_SHARED_KEY", default="")

PROVIDER_TIMEOUT_SECONDS = env.float("PROVIDER_TIMEOUT_SECONDS", default=10.0)
SEND_MAX_ATTEMPTS = env.int("SEND_MAX_ATTEMPTS", default=5)
# Backoff between attempts: base * 2**attempt seconds, capped; a provider's Retry-After wins.
RETRY_BACKOFF_BASE_SECONDS = env.float("RETRY_BACKOFF_BASE_SECONDS", default=2.0)
RETRY_BACKOFF_MAX_SECONDS = env.float("RETRY_BACKOFF_MAX_SECONDS", default=300.0)

# --- Production hardening (only when DEBUG is off; `manage.py check --deploy` is clean).
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_phone_numbers": {"()": "whatsbot_project.logging.MaskPhoneNumbers"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["mask_phone_numbers"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        "twilio": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

# --- Staff back-office: live inbox, takeover, Content-Security-Policy (issue 6)
# A conversation in human mode with no message for this many minutes goes back to the bot.
HUMAN_MODE_IDLE_MINUTES = env.int("HUMAN_MODE_IDLE_MINUTES", default=30)
CELERY_BEAT_SCHEDULE["hand-back-idle-conversations"] = {
    "task": "conversations.tasks.hand_back_idle_conversations",
    "schedule": 60,
}
# Whole words (any case) that make a customer message a request for a person.
HUMAN_REQUEST_KEYWORDS = env.list(
    "HUMAN_REQUEST_KEYWORDS",
    default=["agent", "human", "operator", "operatore", "operatrice", "operador", "persona", "representative"],
)
# Offer the model a `request_human` tool, so requests no keyword catches are flagged too.
BOT_DETECTS_HUMAN_REQUESTS = env.bool("BOT_DETECTS_HUMAN_REQUESTS", default=True)
# How often an open live-inbox websocket re-checks that its user is still active staff.
LIVE_ACCESS_RECHECK_SECONDS = env.int("LIVE_ACCESS_RECHECK_SECONDS", default=60)
# django-csp: no inline script on any page; scripts, styles, fetches and websockets from this host
# only. Admin templates still use a few inline style attributes; the live inbox forbids those too.
MIDDLEWARE += ["csp.middleware.CSPMiddleware"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
