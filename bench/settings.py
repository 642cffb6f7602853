"""Settings of the benchmark site: the example project plus the naive baseline view.

``DATABASE_URL`` points at the dedicated ``plunk_bench`` database; connections stay persistent
and health-checked (``CONN_MAX_AGE=600``) for our views and the naive baseline alike, so the
ratio measures the code path, not connection handling.
"""

from __future__ import annotations

import os

# Seeding millions of rows takes longer than example_project's 5 s statement timeout.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "0")

from example_project.settings import *  # noqa: E402, F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405 (plunk_seed)

DEBUG = False
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # 4xx are expected (readiness probe); 5xx still print.
    "loggers": {"django.request": {"level": "ERROR"}},
}
