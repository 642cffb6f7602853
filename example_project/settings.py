"""Settings of the example site: plunk_events mounted at the root, the admin at /admin/."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
ALLOWED_HOSTS = [
    "127.0.0.1",
    "localhost",
    *filter(None, os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")),
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "plunk_events",
    "example_project.demo",
    "django_tasks",  # the Tasks API backport (django.tasks from Django 6): its checks
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'demo.db'}",
        # Persistent, health-checked connections: the biggest single win for ingest
        # (docs/scaling.md, "Persistent connections").
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue for the lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20
else:
    # A stuck database answers a prompt 503 with Retry-After instead of a request that hangs
    # and commits after the client gave up (README "Database timeouts"). Milliseconds; 0 = off.
    # Long maintenance commands (migrate on a big table) can run with DB_STATEMENT_TIMEOUT_MS=0.
    _timeouts = {
        "statement_timeout": os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000"),
        "lock_timeout": os.environ.get("DB_LOCK_TIMEOUT_MS", "3000"),
        "idle_in_transaction_session_timeout": os.environ.get("DB_IDLE_IN_TX_TIMEOUT_MS", "10000"),
    }
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": int(os.environ.get("DB_CONNECT_TIMEOUT_S", "3")),
            "options": " ".join(f"-c {name}={value}" for name, value in _timeouts.items()),
            # A dead peer (network partition) is noticed in about 15 s instead of hours.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        }
    )

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "plunk-events API",
    "DESCRIPTION": "Plunk-compatible Events API served by the plunk_events Django app.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Rate limit counters live in the "default" cache; this site's default is local memory, so each
# worker process counts on its own. To share them across workers and servers (README "Rate
# limits"), use Redis (`pip install redis`):
# CACHES = {
#     "default": {
#         "BACKEND": "django.core.cache.backends.redis.RedisCache",
#         "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
#     }
# }

# Background work (README "Background work"): a task queue in this site's database, run by
# `manage.py db_worker` (`make demo` starts it beside the web server). Without TASKS, tasks
# would run inline and periodic jobs would need `manage.py plunk_tick` from cron.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Email (README "Email"): mail goes through Django's EMAIL_BACKEND. The demo prints it to the
# terminal; a real site sets SMTP or an anymail backend (README "Tracking with django-anymail").
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Plunk demo <hello@example.com>")
# anymail's webhooks (README "Tracking with django-anymail") at /anymail/<esp>/tracking/ and
# /anymail/<esp>/inbound/: they accept only HTTP basic auth with this "user:password".
ANYMAIL = {"WEBHOOK_SECRET": os.environ.get("ANYMAIL_WEBHOOK_SECRET", "demo:demo-webhook-secret")}

PLUNK_EVENTS: dict = {
    # Unsubscribe, subscribe and manage links in mail point here.
    "PUBLIC_URL": os.environ.get("PLUNK_PUBLIC_URL", "http://127.0.0.1:8000"),
}
