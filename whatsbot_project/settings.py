"""whatsbot settings: everything comes from the environment (or an optional `.env`).

With nothing configured a fresh clone runs on embedded defaults: SQLite, an in-memory Celery
broker with a worker inside the `run` process, an in-memory channel layer, the offline
responder and no provider credentials. Every setting is listed in README.md.

Sections, by concern: core, security, database, the model, providers, simulator and web chat,
media, conversation behaviour, staff back-office, GDPR and retention, Celery (broker, beat
schedule) and the channel layer, logging.
"""

from __future__ import annotations

import hashlib
import os
import sys
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from platformdirs import user_data_dir

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables the environment does not set are read from this file, when it exists. `make run`
# writes `.env` on a checkout's first start (DEBUG on and a generated SECRET_KEY), so `manage.py`
# commands see the same settings as the server. Empty: no file (the test suite).
ENV_FILE = env.str("ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE, overwrite=False)


# ----------------------------------------------------------------------------------------------
# Core
# ----------------------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)

_INSECURE_DEV_KEY = "django-insecure-dev-only-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        # One line: manage.py, daphne, gunicorn and Celery print it instead of a traceback
        # (whatsbot_project/startup.py).
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. In production set SECRET_KEY to a long random value, "
            "e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'. "
            "For development, `make .env` (run by `make run`) writes a .env with DEBUG=true and a generated key."
        )
    SECRET_KEY = _INSECURE_DEV_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The URL the outside world (Meta, Twilio, ngrok) uses to reach this app. Twilio signs the URL
# it requested, so behind a proxy the signature only checks against this public URL.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")

# Not "daphne": `manage.py run` and the ASGI deployment start daphne themselves, and as an app it
# would import Twisted into every process (each `manage.py` command, gunicorn, Celery): 0.3 s.
# (`runserver` is thus Django's own, without websockets: use `make run`.)
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "profiles",
    "knowledge",
    "agents",
    "conversations",
    "channels_app",
    "gdpr",
    "ops",
    "integrations",
    # Last: it resets the staff roles after every migrate, once every app's permissions exist.
    "accounts",
]

MIDDLEWARE = [
    # Health, readiness and metrics answered before the host and HTTPS checks; a request id for the rest.
    "ops.middleware.OperationsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.StaffSecurityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY, under Security
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
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


LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Static files (WhiteNoise) and stored files (customer media: MEDIA_ROOT, or any Django storage).
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": env.str("MEDIA_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# The staff API: staff sessions, or API tokens with scopes (integrations/auth.py), each token
# rate-limited; its OpenAPI schema at /api/schema/, browsable at /api/docs/.
API_TOKEN_RATE_LIMIT = env.str("API_TOKEN_RATE_LIMIT", default="120/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: DRF takes the WWW-Authenticate of the first class, so a bad token is a 401.
        "integrations.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A session needs the view's `required_permission` (accounts/access.py); a token its
    # `required_scope`, and its staff member the permission too.
    "DEFAULT_PERMISSION_CLASSES": ["integrations.auth.StaffOrScopedToken"],
    "DEFAULT_THROTTLE_CLASSES": ["integrations.auth.ApiTokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_token": API_TOKEN_RATE_LIMIT},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "integrations.schema.ScopedAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "whatsbot staff API",
    "DESCRIPTION": "Conversations, messages, takeovers and contacts, for staff and API tokens with scopes.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files from this server (drf-spectacular-sidecar): the CSP allows no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SERVE_AUTHENTICATION": ["rest_framework.authentication.SessionAuthentication"],
    "SCHEMA_PATH_PREFIX": "/api/",
    "PREPROCESSING_HOOKS": ["integrations.schema.only_the_staff_api"],
    # Two models have a `status` field: each choice set gets its own name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "conversations.models.Conversation.Status",
        "MessageStatusEnum": "conversations.models.Message.Status",
    },
}


# ----------------------------------------------------------------------------------------------
# Security
# ----------------------------------------------------------------------------------------------

# Meta sends webhook payloads of up to 3 MB; anything larger is refused with 413, on ASGI even
# when Content-Length is missing or understated (Django counts the bytes as it reads them).
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

# Production hardening (only when DEBUG is off; `manage.py check --deploy` is clean).
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"

# Staff accounts (accounts/): roles, two-factor login, lock-out, sessions, the audit trail.
# The roles Supervisor, Data officer and Administrator (and superusers) always need a second
# factor; this makes it required for every staff member (Agents too).
STAFF_TWO_FACTOR_REQUIRED = env.bool("STAFF_TWO_FACTOR_REQUIRED", default=False)
# Hours a two-factor set-up code stays valid: where two-factor login is required, an
# authenticator app is set up only with a code an Administrator (or the
# `issue_two_factor_setup_code` command) issued, never with the password alone.
TWO_FACTOR_SETUP_CODE_HOURS = env.int("TWO_FACTOR_SETUP_CODE_HOURS", default=72)
# A staff session with no request for this long ends (0: only SESSION_COOKIE_AGE ends it).
STAFF_SESSION_IDLE_MINUTES = env.int("STAFF_SESSION_IDLE_MINUTES", default=120)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE_SECONDS", default=12 * 60 * 60)
# Days the security audit trail (logins, role changes, exports, erasures…) is kept.
SECURITY_AUDIT_RETENTION_DAYS = env.int("SECURITY_AUDIT_RETENTION_DAYS", default=365)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Refuse passwords found in known breaches (Have I Been Pwned, k-anonymity: only the first five
# characters of the password's SHA-1 leave the machine). Unreachable: the check is skipped with
# a warning and the other validators still apply. Off: no network call at all.
PASSWORD_BREACH_CHECK = env.bool("PASSWORD_BREACH_CHECK", default=True)
if PASSWORD_BREACH_CHECK:
    AUTH_PASSWORD_VALIDATORS.append({"NAME": "pwned_passwords_django.validators.PwnedPasswordsValidator"})
PWNED_PASSWORDS = {"API_TIMEOUT": 1.0}
# django-axes: lock a login name, and separately an address, after LOGIN_FAILURE_LIMIT failures
# (passwords and second-factor codes) until LOGIN_COOLOFF_MINUTES after the last one; an
# Administrator unlocks early by deleting the attempt (admin → Axes → Access attempts).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_COOLOFF_MINUTES", default=15.0) / 60
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password", "code", "otp_token"]
# Its log lines name an attempt by account and address, never by whatever was typed as the name.
AXES_CLIENT_STR_CALLABLE = "accounts.audit.describe_login_client"
# The client address: REMOTE_ADDR, unless TRUSTED_PROXY_COUNT proxies (Caddy: 1) put it in
# X-Forwarded-For; trusting that header without a proxy would let anyone pick their address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
# django-otp: the authenticator app shows this issuer; administrators never see a user's key.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="whatsbot")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# django-csp: no inline script on any page; scripts, styles, fetches and websockets from this host
# only. Admin templates still use a few inline style attributes; the live inbox forbids those too.
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


# ----------------------------------------------------------------------------------------------
# Database
# ----------------------------------------------------------------------------------------------

# A SQLite file by default; PostgreSQL (or anything dj-database-url knows) by URL.
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
# Under ASGI Django runs each request's sync code on a thread of its own, so persistent
# connections pile up until PostgreSQL refuses clients (seen in bench/ingest.py with daphne).
# Django's docs: disable them under ASGI. The ASGI servers are daphne, which loads asgi.py (it
# sets WHATSBOT_ASGI before these settings are read), and `manage.py run`, which serves through
# daphne in the same process (its in-process worker follows).
if os.environ.get("WHATSBOT_ASGI") == "1" or sys.argv[1:2] == ["run"]:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# A pool of PostgreSQL connections per process (psycopg_pool, through Django): for a worker whose
# concurrency is larger than the connections PostgreSQL should hold, such as a gevent pool with
# hundreds of slots. Each task gives its connection back while it waits on the network
# (conversations/connections.py). Django requires CONN_MAX_AGE 0 with it.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=0)
if DATABASE_POOL_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DATABASE_POOL_SIZE}
# A PostgreSQL that does not answer is down after this many seconds, not after the kernel's
# minutes: a connection it has not accepted in time (libpq connect_timeout, at least 2 s), and one
# whose host has not acknowledged what was sent in time (tcp_user_timeout: a network gone between
# queries). Requests then fail fast, and /readyz/ answers 503 within seconds (ops/health.py).
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=2)
if DATABASE_CONNECT_TIMEOUT > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # DATABASE_URL's own values win
    _options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    _options.setdefault("tcp_user_timeout", DATABASE_CONNECT_TIMEOUT * 1000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# ----------------------------------------------------------------------------------------------
# The model (OpenAI)
# ----------------------------------------------------------------------------------------------

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
# Speech-to-text model for voice notes (the others are deprecated); the language is detected, not fixed.
OPENAI_TRANSCRIBE_MODEL = env.str("OPENAI_TRANSCRIBE_MODEL", default="gpt-transcribe")
# The OpenAI Conversations API holds the context server-side (one OpenAI conversation per
# conversation, a new one after /reset) instead of our database; needs a server that has it.
OPENAI_USE_CONVERSATIONS = env.bool("OPENAI_USE_CONVERSATIONS", default=False)

BOT_INSTRUCTIONS = env.str(
    "BOT_INSTRUCTIONS",
    default=(
        "You are the friendly customer-service assistant of this business on WhatsApp. "
        "Answer briefly and accurately, in the customer's language. If you do not know "
        "something, say so and offer to have a person follow up."
    ),
)
BOT_INSTRUCTIONS_FILE = env.str("BOT_INSTRUCTIONS_FILE", default="")


# ----------------------------------------------------------------------------------------------
# Providers (Meta, Twilio)
# ----------------------------------------------------------------------------------------------

WHATSAPP_VERIFY_TOKEN = env.str("WHATSAPP_VERIFY_TOKEN", default="")
# In development the simulator signs its webhooks with a secret derived from SECRET_KEY, so a
# fresh clone works end to end; in production an unset secret refuses every Meta webhook.
WHATSAPP_APP_SECRET = env.str(
    "WHATSAPP_APP_SECRET",
    default=hashlib.sha256(f"whatsbot-simulator:{SECRET_KEY}".encode()).hexdigest() if DEBUG else "",
)
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

# Longest part of one outbound message per channel, in UTF-16 code units (how emoji count).
# Meta allows 4096, Twilio 1600 (WhatsApp included); an SMS of 1600 is about 11 GSM segments.
WHATSAPP_META_MAX_CHARS = env.int("WHATSAPP_META_MAX_CHARS", default=4096)
WHATSAPP_TWILIO_MAX_CHARS = env.int("WHATSAPP_TWILIO_MAX_CHARS", default=1600)
SMS_MAX_CHARS = env.int("SMS_MAX_CHARS", default=1600)
# Meta: mark the customer's message read and show "typing…" when work on a reply starts.
WHATSAPP_TYPING_INDICATOR = env.bool("WHATSAPP_TYPING_INDICATOR", default=True)


# ----------------------------------------------------------------------------------------------
# Simulator, web chat, webhook capture
# ----------------------------------------------------------------------------------------------

# The simulator writes as any customer through the real pipeline (the model, tools that change
# things): on in development, in production only when set, and then for staff with
# `conversations.use_simulator` (Supervisors). Off, its pages answer 404.
SIMULATOR_ENABLED = env.bool("SIMULATOR_ENABLED", default=DEBUG)
# Where the simulator (and `replay_webhook`) POST their signed webhooks; `run` sets it to its
# own address. Default: PUBLIC_BASE_URL, else http://127.0.0.1:8000.
SIMULATOR_WEBHOOK_URL = env.str("SIMULATOR_WEBHOOK_URL", default="")
# Sites allowed to embed the web chat widget in an iframe (CSP frame-ancestors), e.g.
# "https://shop.example.com". Empty: only this app's own pages.
WEBCHAT_ALLOWED_ORIGINS = env.list("WEBCHAT_ALLOWED_ORIGINS", default=[])
# Keep raw webhook requests (headers and body) this many hours for `replay_webhook`; 0 = off.
# Captures are personal data: purged after this time and erased with their subject.
WEBHOOK_CAPTURE_HOURS = env.int("WEBHOOK_CAPTURE_HOURS", default=0)


# ----------------------------------------------------------------------------------------------
# Media: customer photos, voice notes, files
# ----------------------------------------------------------------------------------------------

# Largest file kept per message kind, in bytes; a larger one is refused without being read whole.
MEDIA_MAX_BYTES = {
    "image": env.int("MEDIA_MAX_IMAGE_BYTES", default=5 * 1024 * 1024),
    "audio": env.int("MEDIA_MAX_AUDIO_BYTES", default=16 * 1024 * 1024),
    "video": env.int("MEDIA_MAX_VIDEO_BYTES", default=16 * 1024 * 1024),
    "sticker": env.int("MEDIA_MAX_STICKER_BYTES", default=512 * 1024),
    "document": env.int("MEDIA_MAX_DOCUMENT_BYTES", default=25 * 1024 * 1024),
}
# Read timeout of one media request (the connect timeout is 3 s).
MEDIA_DOWNLOAD_TIMEOUT_SECONDS = env.float("MEDIA_DOWNLOAD_TIMEOUT_SECONDS", default=20.0)
# Tries per download and per transcription, first one included; waits base, 3*base, 9*base… between.
MEDIA_DOWNLOAD_ATTEMPTS = env.int("MEDIA_DOWNLOAD_ATTEMPTS", default=3)
MEDIA_RETRY_BACKOFF_SECONDS = env.float("MEDIA_RETRY_BACKOFF_SECONDS", default=1.0)
# Redirects followed per download (Twilio redirects once, to its CDN).
MEDIA_MAX_REDIRECTS = env.int("MEDIA_MAX_REDIRECTS", default=3)
# Photos with more pixels than this are refused unopened (decompression bombs).
MEDIA_IMAGE_MAX_PIXELS = env.int("MEDIA_IMAGE_MAX_PIXELS", default=40_000_000)
# Photos are downscaled to fit this many pixels per side before they go to the model.
MEDIA_IMAGE_MAX_SIDE = env.int("MEDIA_IMAGE_MAX_SIDE", default=1536)


# ----------------------------------------------------------------------------------------------
# Conversation behaviour
# ----------------------------------------------------------------------------------------------

# How many recent messages the model sees verbatim.
CONTEXT_MAX_MESSAGES = env.int("CONTEXT_MAX_MESSAGES", default=20)
# Turns older than the verbatim window are folded into a rolling summary once this many of them
# have piled up: one summary call per this many messages.
CONTEXT_SUMMARY_BATCH = env.int("CONTEXT_SUMMARY_BATCH", default=10)
# Upper bound of the summary's length, in output tokens.
CONTEXT_SUMMARY_MAX_TOKENS = env.int("CONTEXT_SUMMARY_MAX_TOKENS", default=400)
# Messages arriving within this many seconds of each other get one reply that reads them all.
BURST_WINDOW_SECONDS = env.float("BURST_WINDOW_SECONDS", default=2.0)
# A burst is answered at the latest this long after its first message, however steady the stream.
BURST_MAX_WAIT_SECONDS = env.float("BURST_MAX_WAIT_SECONDS", default=15.0)
# While profile details are missing, the instructions ask for them at most once per this many
# customer messages; never once complete or declined.
PROFILE_ASK_EVERY_TURNS = env.int("PROFILE_ASK_EVERY_TURNS", default=4)
# Add to the model's context a short text of the same contact's recent messages on their other
# channels (built from the database, no extra model call). Off: each channel's chat stands alone.
CONTACT_CONTEXT_SUMMARY = env.bool("CONTACT_CONTEXT_SUMMARY", default=False)


# ----------------------------------------------------------------------------------------------
# Staff back-office (live inbox, takeover)
# ----------------------------------------------------------------------------------------------

# A conversation in human mode with no message for this many minutes goes back to the bot
# (beat checks every minute).
HUMAN_MODE_IDLE_MINUTES = env.int("HUMAN_MODE_IDLE_MINUTES", default=30)
# Whole words (any case) that make a customer message a request for a person.
HUMAN_REQUEST_KEYWORDS = env.list(
    "HUMAN_REQUEST_KEYWORDS",
    default=[
        "agent",
        "human",
        "person",
        "operator",
        "representative",
        "operatore",
        "operatrice",
        "operador",
        "persona",
        "humano",
        "atendente",
        "conseiller",
        "mitarbeiter",
        "medewerker",
    ],
)
# Offer the model a `request_human` tool, so requests no keyword catches are flagged too.
BOT_DETECTS_HUMAN_REQUESTS = env.bool("BOT_DETECTS_HUMAN_REQUESTS", default=True)
# How often an open live-inbox websocket re-checks that its user is still active staff.
LIVE_ACCESS_RECHECK_SECONDS = env.int("LIVE_ACCESS_RECHECK_SECONDS", default=60)


# ----------------------------------------------------------------------------------------------
# Knowledge base (knowledge/): what the bot answers from
# ----------------------------------------------------------------------------------------------

# Language of new articles and imports when none is given (en, it, es, fr, de, pt, nl).
KNOWLEDGE_DEFAULT_LANGUAGE = env.str("KNOWLEDGE_DEFAULT_LANGUAGE", default="en")
# The share of a question's (idf-weighted) terms a passage must hold to be used at all, 0 to 1;
# calibrated on knowledge/eval/demo.yaml (README, Knowledge base).
KNOWLEDGE_MIN_RELEVANCE = env.float("KNOWLEDGE_MIN_RELEVANCE", default=0.08)
# The offline responder (no OPENAI_API_KEY) quotes its best passage only above this: with no
# model to judge it, a wrong quote is worse than "I don't know".
KNOWLEDGE_OFFLINE_MIN_RELEVANCE = env.float("KNOWLEDGE_OFFLINE_MIN_RELEVANCE", default=0.3)
# Passages above the threshold put in every reply's input.
KNOWLEDGE_CONTEXT_PASSAGES = env.int("KNOWLEDGE_CONTEXT_PASSAGES", default=3)
# Offer the model a `search_knowledge` tool for follow-up searches; rounds of tool calls per reply.
KNOWLEDGE_SEARCH_TOOL = env.bool("KNOWLEDGE_SEARCH_TOOL", default=True)
OPENAI_MAX_TOOL_ROUNDS = env.int("OPENAI_MAX_TOOL_ROUNDS", default=3)
# Hosts that agents' HTTP tools may reach although they are private or plain http (an internal
# order system, the DEBUG demo at localhost); every tool still lists the hosts it may reach.
TOOL_PRIVATE_HOSTS = env.list("TOOL_PRIVATE_HOSTS", default=["localhost"] if DEBUG else [])
# Budgets (conversations/services/budgets.py), 0 or unset for no limit: model replies per minute
# and model tokens per day for each contact, and a cap on the month's model cost in
# MODEL_PRICE_CURRENCY, computed from MODEL_PRICES: {"model": {"input": …, "cached_input": …,
# "output": …}} per million tokens (a dated model name takes the price of its prefix).
BUDGET_REPLIES_PER_MINUTE = env.int("BUDGET_REPLIES_PER_MINUTE", default=0)
BUDGET_TOKENS_PER_DAY = env.int("BUDGET_TOKENS_PER_DAY", default=0)
BUDGET_MONTHLY_SPEND_CAP = env("BUDGET_MONTHLY_SPEND_CAP", cast=Decimal, default=None)
MODEL_PRICES = env.json("MODEL_PRICES", default={})
MODEL_PRICE_CURRENCY = env.str("MODEL_PRICE_CURRENCY", default="USD")
# Append the public links (Article.url) of the articles a reply used, for the customer to read.
KNOWLEDGE_SOURCE_LINKS = env.bool("KNOWLEDGE_SOURCE_LINKS", default=False)
# An OpenAI vector store kept in sync with the active articles and offered as `file_search`.
KNOWLEDGE_VECTOR_STORE_ID = env.str("KNOWLEDGE_VECTOR_STORE_ID", default="")
# Admin uploads larger than this are read and indexed by a Celery task, with progress shown.
KNOWLEDGE_BACKGROUND_IMPORT_BYTES = env.int("KNOWLEDGE_BACKGROUND_IMPORT_BYTES", default=256 * 1024)


# ----------------------------------------------------------------------------------------------
# GDPR and retention (gdpr/)
# ----------------------------------------------------------------------------------------------

# Days to keep messages and their media; unset keeps them until erased. Conversations left
# empty by the purge go too (profiles stay: they hold the opt-out).
DATA_RETENTION_DAYS = env.int("DATA_RETENTION_DAYS", default=None)
# Days to keep the webhook dedup ids (ProcessedMessage). Meta retries a delivery for up to 7 days.
PROCESSED_MESSAGE_RETENTION_DAYS = env.int("PROCESSED_MESSAGE_RETENTION_DAYS", default=8)
# Rows deleted per transaction by purge_expired: memory stays flat however large the tables.
PURGE_BATCH_SIZE = env.int("PURGE_BATCH_SIZE", default=2000)
# How often beat runs the purge.
PURGE_INTERVAL_SECONDS = env.int("PURGE_INTERVAL_SECONDS", default=24 * 60 * 60)
# Key of the hash that erasure records keep instead of the identifier; SECRET_KEY when empty.
# Set it to keep erasure records checkable across a SECRET_KEY rotation.
GDPR_IDENTIFIER_HASH_KEY = env.str("GDPR_IDENTIFIER_HASH_KEY", default="")
# Seconds between retries of a remote deletion the processor refused for now (Twilio 20009…);
# also how often beat sweeps the ones still pending.
REMOTE_DELETION_RETRY_SECONDS = env.int("REMOTE_DELETION_RETRY_SECONDS", default=300)
# Where gdpr_export writes its files (personal data) unless --output says otherwise: outside the
# code checkout, created owner-only (0700). Default: the user's data folder, e.g.
# ~/.local/share/whatsbot/gdpr-exports on Linux.
GDPR_EXPORT_DIR = Path(env.str("GDPR_EXPORT_DIR", default=str(Path(user_data_dir("whatsbot")) / "gdpr-exports")))


# ----------------------------------------------------------------------------------------------
# Celery, beat and the channel layer
# ----------------------------------------------------------------------------------------------

# Redis: the Celery broker and the channel layer when set; in-memory (one process) otherwise.
REDIS_URL = env.str("REDIS_URL", default="")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://localhost/")
# The worker's slots: `celery worker` runs this many unless `--concurrency` says otherwise. What
# may run at once in one worker process sizes its connection pools, to the broker (below) and to
# the providers (conversations/providers/base.py); a worker started with more slots than this
# stops at start with what to set (whatsbot_project/celery.py).
WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=200)
CELERY_WORKER_CONCURRENCY = WORKER_CONCURRENCY
BROKER_VISIBILITY_TIMEOUT_SECONDS = env.int("BROKER_VISIBILITY_TIMEOUT_SECONDS", default=900)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = False  # opted into per task, only on the idempotent ones
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set;
# whatsbot_project/celery.py applies CONN_MAX_AGE around tasks instead, as for requests.
CELERY_DB_REUSE_MAX = sys.maxsize
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A webhook enqueues after commit and must not hang on a broker that is down: fail fast, the
# periodic sweep finds the message in the database later.
CELERY_TASK_PUBLISH_RETRY = False
# A publish holds one of the process's pooled broker connections, and waits for a free one with
# no time limit (kombu). With kombu's default of 10, a broker that does not answer (a Redis
# frozen with SIGSTOP) held each for the socket timeout (5 s) while the others queued, the
# recorder and the sweep too: of 50 publishers the last waited 26 s; of 200, 100 s. One per slot,
# as for the acks below: each publish fails within its own timeout, the row waits for the sweep.
CELERY_BROKER_POOL_LIMIT = WORKER_CONCURRENCY + 10
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 0,  # publishers: one connection attempt, no reconnect loop
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    # Redis hands an unacknowledged task to another worker after this long. Recovery does not
    # wait for it (the sweep finds orphaned work in the database within seconds); it must only
    # outlast the longest wait of a retry (RETRY_BACKOFF_MAX_SECONDS, held in the worker) plus a
    # task's run, or Redis hands out duplicates (harmless: every claim is conditional).
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS,
    # Redis connections per process, opened on demand: every slot may acknowledge its task at
    # the same moment. kombu's default of 10 failed most acknowledgements of a surge ("Couldn't
    # ack …: MaxConnectionsError", logged CRITICAL; Redis handed those tasks out again later).
    "max_connections": WORKER_CONCURRENCY + 10,
}
if CELERY_BROKER_URL.startswith("memory://"):
    # The in-memory broker polls; its default 1 s would add a second to every step.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.05

# From webhook to worker. On PostgreSQL a webhook's INSERT wakes the workers' recorder with
# NOTIFY (a trigger), so the webhook publishes nothing; elsewhere, or when off, it enqueues a
# record task per message.
INBOUND_NOTIFY = env.bool("INBOUND_NOTIFY", default=True)
# The recorder also looks for waiting deliveries this often, in case a NOTIFY was missed.
INBOUND_RECORDER_POLL_SECONDS = env.float("INBOUND_RECORDER_POLL_SECONDS", default=1.0)
# Woken, the recorder waits this long so messages arriving together are recorded in one batch.
INBOUND_RECORDER_GATHER_SECONDS = env.float("INBOUND_RECORDER_GATHER_SECONDS", default=0.1)
# Tries at recording one accepted delivery before it is quarantined for staff (admin).
INBOUND_RECORD_MAX_ATTEMPTS = env.int("INBOUND_RECORD_MAX_ATTEMPTS", default=3)

# Recovery (services/sweep.py, services/workers.py, services/unknown.py). Every worker beats in
# the database and sweeps at start and every SWEEP_INTERVAL_SECONDS: it records accepted
# deliveries and re-enqueues messages and sends waiting longer than SWEEP_REQUEUE_AFTER_SECONDS,
# and takes back the claims of a worker silent for WORKER_HEARTBEAT_STALE_SECONDS (or restarted).
SWEEP_INTERVAL_SECONDS = env.float("SWEEP_INTERVAL_SECONDS", default=10)
SWEEP_REQUEUE_AFTER_SECONDS = env.float("SWEEP_REQUEUE_AFTER_SECONDS", default=15)
# A claim this old is taken back even from a live worker (one that lost track of it); while tasks
# wait in the broker, a message or send this old is re-enqueued (younger, it waits its turn).
SWEEP_STALE_AFTER_SECONDS = env.float("SWEEP_STALE_AFTER_SECONDS", default=120)
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=5)
WORKER_HEARTBEAT_STALE_SECONDS = env.float("WORKER_HEARTBEAT_STALE_SECONDS", default=15)
# A send whose outcome is unknown is looked up at the provider once its call is surely over
# (longer than PROVIDER_TIMEOUT_SECONDS); where the provider has no lookup (Meta), a send with
# no status this long after the call is taken as not accepted and re-sent, once.
UNKNOWN_LOOKUP_AFTER_SECONDS = env.float("UNKNOWN_LOOKUP_AFTER_SECONDS", default=30)
UNKNOWN_RESEND_AFTER_SECONDS = env.float("UNKNOWN_RESEND_AFTER_SECONDS", default=300)

# Every periodic task, in seconds (Celery beat; `manage.py run` embeds it).
CELERY_BEAT_SCHEDULE = {
    # The sweep runs in every worker (conversations/bootsteps.py), not here: it must not depend
    # on beat, nor on the broker it recovers from.
    "resolve-unknown-sends": {
        "task": "conversations.tasks.resolve_unknown_sends",
        "schedule": SWEEP_INTERVAL_SECONDS,
    },
    "purge-expired-webhook-captures": {
        "task": "conversations.tasks.purge_expired_captures",
        "schedule": 15 * 60,
    },
    "hand-back-idle-conversations": {
        "task": "conversations.tasks.hand_back_idle_conversations",
        "schedule": 60,
    },
    "purge-expired-data": {
        "task": "gdpr.tasks.purge_expired_data",
        "schedule": PURGE_INTERVAL_SECONDS,
    },
    "purge-expired-security-events": {
        "task": "accounts.tasks.purge_expired_security_events",
        "schedule": 24 * 60 * 60,
    },
    "retry-remote-deletions": {
        "task": "gdpr.tasks.retry_pending_remote_deletions",
        "schedule": REMOTE_DELETION_RETRY_SECONDS,
    },
}

# The cache holds only the live inbox's presence mark (conversations/notify.py): shared by every
# process through Redis; per process otherwise (one process: `manage.py run`).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Channels: the staff live inbox, the simulator and the web chat push over this layer.
if REDIS_URL:
    # A socket's receive blocks in Redis (BZPOPMIN) for up to 5 s (channels_redis'
    # `brpop_timeout`), and redis-py 8 gives every socket a 5 s read timeout by default: the two
    # raced, and an idle socket's receive failed with "Timeout reading from …" (redis-py #4091).
    # The read timeout outlasts the blocking wait and still ends a read from a dead server.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


# ----------------------------------------------------------------------------------------------
# Logging
# ----------------------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# `json`: one JSON object per line (timestamp, level, logger, message, request, conversation and
# task ids) from web, worker, beat and commands alike; `plain`: one readable line.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
# Applies LOGGING and masks phone numbers and emails in every record of the process.
LOGGING_CONFIG = "whatsbot_project.logging.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_phone_numbers": {"()": "whatsbot_project.logging.MaskPhoneNumbers"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "telemetry.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["mask_phone_numbers"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces itself at INFO in every process; failures and lock-outs are in the
        # security audit trail (accounts), lock-outs also at WARNING.
        "axes": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        "twilio": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
# Error tracking (sentry-sdk) when set; events leave with bodies, numbers and emails scrubbed
# (whatsbot_project/sentry.py).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="production")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)


# ----------------------------------------------------------------------------------------------
# Operations: readiness thresholds, metrics
# ----------------------------------------------------------------------------------------------

# /readyz/ fails when the newest worker heartbeat is older than this, or the oldest accepted
# delivery waits longer than READY_RECORDING_SECONDS to be recorded, or the oldest customer
# message longer than READY_REPLY_SECONDS for its answer (human-mode messages are answered at once).
READY_WORKER_HEARTBEAT_SECONDS = env.float("READY_WORKER_HEARTBEAT_SECONDS", default=60)
READY_RECORDING_SECONDS = env.float("READY_RECORDING_SECONDS", default=60)
READY_REPLY_SECONDS = env.float("READY_REPLY_SECONDS", default=300)
# /metrics answers a bearer token equal to METRICS_TOKEN, or clients in these addresses/networks.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1/32", "::1/128"])
# Outgoing webhooks (integrations/webhooks.py): attempts per delivery (exponential backoff from
# RETRY_BACKOFF_BASE_SECONDS between them), failed deliveries in a row that disable an endpoint,
# the timeout of one POST, and hosts exempt from the SSRF guard (https and public addresses only
# otherwise), e.g. a CRM on the private network.
OUTGOING_WEBHOOK_MAX_ATTEMPTS = env.int("OUTGOING_WEBHOOK_MAX_ATTEMPTS", default=6)
OUTGOING_WEBHOOK_DISABLE_AFTER = env.int("OUTGOING_WEBHOOK_DISABLE_AFTER", default=20)
OUTGOING_WEBHOOK_TIMEOUT_SECONDS = env.float("OUTGOING_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
OUTGOING_WEBHOOK_ALLOWED_HOSTS = env.list("OUTGOING_WEBHOOK_ALLOWED_HOSTS", default=[])

if SENTRY_DSN:
    from whatsbot_project.sentry import init_sentry

    init_sentry(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
