"""Settings for the platform, read from the environment.

With no environment set, it runs on its embedded defaults: a SQLite file, Celery tasks run in-process,
a local-memory cache, e-mail printed to the console and a demo checkout in place of Stripe. Every
production service is switched on by its own variable; see the README's operating guide.
"""

import hashlib
import os
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
# The only key that works with no environment, and a public one: anyone could sign sessions, e-mail confirmations
# and password resets with it. So it is refused for any address other than this machine's (below).
EMBEDDED_SECRET_KEY = "django-insecure-embedded-default-do-not-use-in-production"  # noqa: S105 (public on purpose)
SECRET_KEY = env("SECRET_KEY", EMBEDDED_SECRET_KEY)

# The public address of the site. Links in e-mails are built from it, and an https:// address turns on
# the HTTPS-only settings (redirect, HSTS, secure cookies).
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
_site = urlsplit(SITE_URL)
HTTPS = _site.scheme == "https"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", f"{_site.hostname},127.0.0.1,localhost")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
if SECRET_KEY == EMBEDDED_SECRET_KEY and (HTTPS or not _LOCAL_HOSTS.issuperset({_site.hostname, *ALLOWED_HOSTS})):
    raise ImproperlyConfigured(
        f"SECRET_KEY is not set, and the site is served at {SITE_URL} (for {', '.join(ALLOWED_HOSTS)}): set "
        "SECRET_KEY to a long random string, the same for every process (the embedded key is public, and only for "
        "running on this machine)."
    )
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", SITE_URL)
WAGTAILADMIN_BASE_URL = SITE_URL
WAGTAIL_SITE_NAME = env("SITE_NAME", "North East Tech Network")
ORGANISATION_NAME = WAGTAIL_SITE_NAME

INSTALLED_APPS = [
    "config",
    "accounts",
    "membership",
    "benefits",
    "cms",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.settings",
    "wagtail.contrib.sitemaps",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_htmx",
    "import_export",
    "csp",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sitemaps",
]

MIDDLEWARE = [
    # Outside SecurityMiddleware, so the redirect to https it answers itself carries the headers too.
    "config.security.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before any view or CSRF check reads the body; after the user is known, for the back office's larger limit.
    "config.security.RequestSizeLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.StaffMFARequiredMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
    "cms.cache.PageCacheMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "wagtail.contrib.settings.context_processors.settings",
                "cms.context_processors.site_shell",
            ],
        },
    },
]

# Database: SQLite by default, PostgreSQL (or anything dj-database-url reads) through DATABASE_URL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait rather than fail when the in-process worker and a request write at the same moment.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache (rate limits and sessions): local memory by default, Redis through REDIS_URL. A Redis outage degrades the
# cache instead of failing requests (config.cache): the default cache falls back to this process's memory, so rate
# limits hold per process; sessions miss and are read from the database.
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    _redis_cache = {
        "BACKEND": "config.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "members"),
        "TIMEOUT": 300,
        # A hung Redis costs a request this long once, then is skipped for a few seconds (config.cache).
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
    CACHES = {
        "default": {**_redis_cache, "OPTIONS": {**_redis_cache["OPTIONS"], "LOCAL_FALLBACK": True}},
        "sessions": _redis_cache,
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "sessions"},
    }
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"
# The page cache: public pages' HTML kept for anonymous visitors (cms.cache). Off unless set; turn it on with
# REDIS_URL, so that publishing a page purges it for every web process.
PAGE_CACHE = envbool("PAGE_CACHE", False)
PAGE_CACHE_SECONDS = envint("PAGE_CACHE_SECONDS", 300)

# Background jobs: a Celery worker on CELERY_BROKER_URL, or in-process when no broker is configured.
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker took but never acknowledged (the worker died) goes back on the queue once it is this old:
# longer than any task runs, or a slow task would be started twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Europe/London"
CELERY_BEAT_SCHEDULE = {
    # Jobs the broker could not take when they were queued (an outage) are published from the outbox.
    "relay-queued-tasks": {
        "task": "config.tasks.relay_queued_tasks",
        "schedule": crontab(),
    },
    "purge-unverified-accounts": {
        "task": "accounts.tasks.purge_unverified_accounts",
        "schedule": crontab(hour=3, minute=15),
    },
    # Grace periods, lapses, renewal reminders and card charge notices; every step is safe to run twice.
    "run-renewal-jobs": {
        "task": "membership.tasks.run_renewal_jobs",
        "schedule": crontab(hour=6, minute=30),  # UK time (CELERY_TIMEZONE), before the working day
    },
    # Perks whose end date has passed leave the catalogue.
    "expire-perks": {
        "task": "benefits.tasks.expire_perks",
        "schedule": crontab(hour=0, minute=10),
    },
    # Event places held for payment and not paid in time go back, and on to the waitlist.
    "release-expired-event-holds": {
        "task": "cms.events.tasks.release_expired_holds",
        "schedule": crontab(minute="*/5"),
    },
    # Pages with a go-live or expiry time are published or unpublished within a minute of it.
    "publish-scheduled-pages": {
        "task": "cms.tasks.publish_scheduled_pages",
        "schedule": crontab(),
    },
    # Engagement: every score summed again at night (it agrees with the updates made as activity arrives),
    # and the engagement manager's digest on Monday morning, once a week however often beat asks.
    "recompute-engagement-scores": {
        "task": "membership.tasks.recompute_engagement_scores",
        "schedule": crontab(hour=2, minute=40),
    },
    "queue-engagement-digest": {
        "task": "membership.tasks.queue_engagement_digest",
        "schedule": crontab(hour=7, minute=0, day_of_week="mon"),
    },
}

# E-mail: printed to the console unless an SMTP host is given.
EMAIL_HOST = env("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = envint("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "North East Tech Network <hello@netech.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Payments: the demo checkout stands in for Stripe until both keys are set.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env("STRIPE_API_BASE")  # only the test suite's local fake Stripe sets this
DEMO_PAYMENTS = not (STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET)
if DEMO_PAYMENTS and not STRIPE_WEBHOOK_SECRET:
    # The demo checkout signs its events with this, and they arrive through the very same webhook code.
    STRIPE_WEBHOOK_SECRET = "whsec_demo_" + hashlib.sha256(SECRET_KEY.encode()).hexdigest()[:32]
# Days a member keeps their benefits after a renewal payment fails, before the membership lapses.
BILLING_GRACE_DAYS = envint("BILLING_GRACE_DAYS", 30)
VAT_RATE_PERCENT = 20  # applied on Stripe's side; prices here are before VAT

# Accounts: e-mail is the login, verified before first use; allauth handles every way in.
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{WAGTAIL_SITE_NAME}] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = _site.scheme
ACCOUNT_PREVENT_ENUMERATION = True
# Rate limits, each "amount/period" (s, m, h or d; "5m" is five minutes), several separated by commas. allauth's
# add who is counted: per client address (ip), per e-mail address (key) or per logged-in user. A refused request
# is answered 429 and changes nothing. Behind a load balancer, set TRUSTED_PROXY_COUNT so that addresses are the
# clients' own (from X-Forwarded-For) rather than the balancer's.
ALLAUTH_TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0)
ACCOUNT_RATE_LIMITS = {
    # Every log-in attempt, per address: generous, since an office or an event's wi-fi shares one address.
    "login": env("RATE_LIMIT_LOGIN", "60/m/ip"),
    # Per account: the sixth failed log-in within five minutes is refused.
    "login_failed": env("RATE_LIMIT_LOGIN_FAILED", "10/m/ip,5/5m/key"),
    "signup": env("RATE_LIMIT_SIGNUP", "10/m/ip,100/d/ip"),
    # Asking for a reset e-mail, per address and per e-mail address asked for.
    "reset_password": env("RATE_LIMIT_PASSWORD_RESET", "20/m/ip,5/m/key"),
    # Setting the new password from the e-mail's link.
    "reset_password_from_key": env("RATE_LIMIT_PASSWORD_RESET_FROM_KEY", "20/m/ip"),
    # Asking for a log-in code by e-mail.
    "request_login_code": env("RATE_LIMIT_LOGIN_CODE", "20/m/ip,3/m/key"),
    # Sending a verification e-mail again to the same address.
    "confirm_email": env("RATE_LIMIT_CONFIRM_EMAIL", "1/3m/key"),
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
# The platform's own actions, per logged-in user (config.ratelimit).
RATE_LIMITS = {
    "redeem_perk": env("RATE_LIMIT_REDEMPTIONS", "10/m,100/d"),
    # Sending and resending colleague invitations (each sends an e-mail to an address the admin typed).
    "invite_colleague": env("RATE_LIMIT_INVITATIONS", "30/h,200/d"),
    # Confirming the account's deletion with its password: as many tries as changing the password allows.
    "confirm_account_deletion": env("RATE_LIMIT_ACCOUNT_DELETION", "5/m,20/h"),
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = WAGTAIL_SITE_NAME
# The paths that staff reach only once they have set up two-factor authentication.
STAFF_MFA_REQUIRED_PREFIXES = ("/admin/", "/django-admin/")
STAFF_MFA_REQUIRED = envbool("STAFF_MFA_REQUIRED", True)

# Wagtail: the staff back office.
WAGTAILADMIN_LOGIN_URL = "/admin/login/"  # accounts.views.admin_login_redirect
WAGTAIL_PASSWORD_MANAGEMENT_ENABLED = False
WAGTAIL_PASSWORD_RESET_ENABLED = False
WAGTAILUSERS_PASSWORD_ENABLED = False
WAGTAIL_GRAVATAR_PROVIDER_URL = None  # the back office works offline
WAGTAIL_ENABLE_UPDATE_CHECK = False
WAGTAIL_ENABLE_WHATS_NEW_BANNER = False
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILIMAGES_MAX_UPLOAD_SIZE = 5 * 1024 * 1024
WAGTAILIMAGES_MAX_IMAGE_PIXELS = 40_000_000
WAGTAILEMBEDS_RESPONSIVE_HTML = True
WAGTAILDOCS_EXTENSIONS = ["csv", "docx", "key", "odt", "pdf", "pptx", "rtf", "txt", "xlsx", "zip"]
WAGTAILDOCS_MAX_UPLOAD_SIZE = 20 * 1024 * 1024
# Documents are checked by content as well as by name (config.uploads): no web page saved as .pdf or .csv.
WAGTAILDOCS_DOCUMENT_FORM_BASE = "cms.forms.DocumentForm"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))
# Uploaded files are served by the app unless a CDN or bucket serves them.
SERVE_MEDIA = envbool("SERVE_MEDIA", True)
# Production builds run `collectstatic` and set STATIC_MANIFEST for hashed, compressed, cached files.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if envbool("STATIC_MANIFEST", False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not envbool("STATIC_MANIFEST", False)
if WHITENOISE_USE_FINDERS:
    # Files are served from each app's static folder, so an empty STATIC_ROOT is expected, not a fault.
    warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Requests with a larger body are refused before it is read (config.security.RequestSizeLimitMiddleware): the site's
# largest upload is 5 MB, the back office's an import of up to 50 MB.
MAX_REQUEST_BYTES = envint("MAX_REQUEST_BYTES", 10 * 1024 * 1024)
MAX_BACK_OFFICE_REQUEST_BYTES = envint("MAX_BACK_OFFICE_REQUEST_BYTES", 60 * 1024 * 1024)

# Security. HTTPS-only settings follow SITE_URL; the rest hold everywhere.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

_csp_directives = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "frame-src": ["'self'", "https://www.youtube-nocookie.com", "https://player.vimeo.com"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}
# The public site and member portal enforce the policy; the Wagtail and Django admins use inline
# scripts and styles of their own, so there it is sent report-only.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": STAFF_MFA_REQUIRED_PREFIXES,
    "DIRECTIVES": _csp_directives,
}
CONTENT_SECURITY_POLICY_REPORT_ONLY = {
    "DIRECTIVES": _csp_directives,
}
# What the admins enforce meanwhile (config.security): no framing but their own page previews, no plugins,
# no foreign <base>, and forms post only here.
BACK_OFFICE_CSP = {
    "frame-ancestors": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}
# Browser features no page needs, so no page (nor anything embedded in one) may use them.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Wagtail queues its search and reference index updates as tasks, each logged at INFO.
        "django_tasks": {"level": "WARNING"},
    },
}

# Errors go to Sentry only when a DSN is given.
SENTRY_DSN = env("SENTRY_DSN")
if SENTRY_DSN:
    from config.sentry import init_sentry

    init_sentry(SENTRY_DSN)
