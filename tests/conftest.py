"""Fixtures shared by the suite; ``requires_postgres`` tests skip on SQLite."""

from __future__ import annotations

import os

import hypothesis
import pytest
from django.db import connection
from rest_framework.test import APIClient

from plunk_events.services.projects import create_project

# CI replays the same examples every run (a new random failure belongs to a developer's run,
# not to a merge); locally every run explores new ones. No deadline on CI: the xdist workers
# share two cores with real task workers, so one example's time says nothing about the code.
hypothesis.settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI") == "true":
    hypothesis.settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="needs DATABASE_URL pointing at PostgreSQL")
    for item in items:
        if "requires_postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clear_throttles():
    """Rate limit counters live in the cache: each test starts from none."""
    from django.core.cache import caches

    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"


@pytest.fixture
def project(db):
    return create_project("Acme")


@pytest.fixture
def other_project(db):
    return create_project("Other")


@pytest.fixture
def client_for():
    """``client_for(key)``: an APIClient sending ``Authorization: Bearer <key>``."""

    def make(key: str | None) -> APIClient:
        client = APIClient()
        if key is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.fixture
def sk(project, client_for):
    return client_for(project.secret_key)


@pytest.fixture
def pk(project, client_for):
    return client_for(project.public_key)


@pytest.fixture
def enqueued():
    """Every task enqueued meanwhile, from any thread (DummyBackend keeps results per thread)."""
    from plunk_events.compat import task_enqueued

    results = []

    def collect(sender, task_result, **kwargs):
        results.append(task_result)

    task_enqueued.connect(collect, weak=False)
    yield results
    task_enqueued.disconnect(collect)


@pytest.fixture
def deferring(settings, enqueued):
    """A backend that defers tasks and runs none, as a worker's queue (django-tasks-db,
    django-tasks-rq) holds them; returns :func:`enqueued`. The per-process memory of what is
    pending (dispatch nudges, workflow timers) starts empty and is forgotten afterwards."""
    from plunk_events.services import dispatch, workflow_runtime

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    dispatch._pending.clear()
    workflow_runtime._timer_buckets.clear()
    yield enqueued
    dispatch._pending.clear()
    workflow_runtime._timer_buckets.clear()
