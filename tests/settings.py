"""Minimal site for the test suite; ``DATABASE_URL`` switches from SQLite to PostgreSQL."""

from __future__ import annotations

import os
import tempfile

import dj_database_url

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

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
    "bench",  # plunk_seed, for the benchmark smoke test
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "sqlite:///:memory:"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_NAME") or None}
# A read replica for the router test: in tests it mirrors the default database.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ["plunk_events.routers.ReadReplicaRouter"]
STATIC_URL = "static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "plunk-events API",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}
PLUNK_EVENTS: dict = {}
# anymail's webhooks (tests/email): basic auth "user:password", checked by anymail itself.
ANYMAIL = {"WEBHOOK_SECRET": "tests:webhook-secret"}

# Task backend (README "Background work"); the engine tests run against each one with a real
# worker (tests/engine). immediate: inline, no worker (the default); db: django-tasks-db in the
# test database (SQLite: a file, so the worker process sees it); rq: django-tasks-rq on Redis,
# database 14 (PLUNK_TEST_RQ_URL), apart from the rate limit tests' 15. Under pytest-xdist each
# worker gets its own database (gw0: 14, gw1: 13, ...): the tests flush it and own its queue.
TASKS_BACKEND = os.environ.get("PLUNK_TASKS_BACKEND", "immediate")
INSTALLED_APPS.insert(0, "django_tasks")
if TASKS_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
elif TASKS_BACKEND == "db":
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
elif TASKS_BACKEND == "rq":
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    _rq_db = 14 - int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    if _rq_db < 1:
        raise ValueError("the RQ engine tests have Redis databases for 14 xdist workers at most")
    RQ_QUEUES = {
        "default": {"URL": os.environ.get("PLUNK_TEST_RQ_URL", f"redis://127.0.0.1:6379/{_rq_db}")}
    }
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
else:
    raise ValueError(f"PLUNK_TASKS_BACKEND must be immediate, db or rq, not {TASKS_BACKEND!r}")
if TASKS_BACKEND != "immediate" and DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"]["NAME"] = DATABASES["default"]["TEST"]["NAME"] or (
        os.path.join(tempfile.gettempdir(), f"plunk-tests-{os.getpid()}.sqlite3")
    )
