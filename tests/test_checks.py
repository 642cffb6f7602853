"""System checks: each misconfiguration has an id and shows up in ``manage.py check``."""

from __future__ import annotations

import pytest
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from plunk_events.checks import check_settings


def ids(**overrides):
    with override_settings(**overrides):
        return sorted(problem.id for problem in check_settings())


def test_the_test_settings_are_clean():
    assert ids() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a dict", ["plunk_events.E001"]),
        ({"NO_SUCH_KEY": 1}, ["plunk_events.E001"]),
        ({"EVENTS_MAX_LIMIT": 0}, ["plunk_events.E002"]),
        ({"ROLLUP_LAG_SECONDS": -86400}, ["plunk_events.E002"]),
        ({"DELETE_BATCH_SIZE": True}, ["plunk_events.E002"]),
        ({"TRACK_REQUIRE_PUBLIC_KEY": "no"}, ["plunk_events.E002"]),
        ({"SEND_MAX_BYTES": "20MB"}, ["plunk_events.E002"]),
        ({"READ_DATABASE": "nowhere"}, ["plunk_events.E003"]),
        ({"READ_DATABASE": "replica", "TRACK_MAX_BYTES": 2048}, []),
        ({"WEBHOOK_ALLOW_PRIVATE_NETWORKS": ["127.0.0.1/32", "fd00::/8", "10.1.2.3/8"]}, []),
        ({"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "10.0.0.0/8"}, ["plunk_events.E012"]),
        ({"WEBHOOK_ALLOW_PRIVATE_NETWORKS": ["10.0.0.0/33", None]}, ["plunk_events.E012"]),
    ],
)
def test_settings_problems(value, expected):
    assert ids(PLUNK_EVENTS=value) == expected


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_without_immediate_transactions_warns(settings):
    databases = {**settings.DATABASES}
    default = {**databases["default"], "ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}}
    assert ids(DATABASES={**databases, "default": default}) == ["plunk_events.W001"]


def test_missing_apps_are_reported():
    from django.conf import settings

    apps = [a for a in settings.INSTALLED_APPS if a != "django_filters"]
    with override_settings(INSTALLED_APPS=apps):
        assert "plunk_events.E004" in [p.id for p in check_settings()]


def test_checks_are_registered():
    with override_settings(PLUNK_EVENTS={"EVENTS_MAX_LIMIT": -1}), pytest.raises(SystemCheckError):
        call_command("check")


BAD_SETTINGS = {
    "NO_SUCH_KEY": 1,
    "EVENTS_MAX_LIMIT": 0,
    "TRACK_REQUIRE_PUBLIC_KEY": "no",
    "API_KEY_CACHE_SECONDS": -1,
    "DELETE_BATCH_SECONDS": 0,
    "READ_DATABASE": "nowhere",
    "RATE_LIMITS": {"track": "lots"},
    "RATE_LIMIT_CACHE": "nowhere",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": ["localhost"],
}


def test_every_problem_has_a_hint():
    with override_settings(PLUNK_EVENTS=BAD_SETTINGS):
        problems = check_settings()
    assert sorted(p.id for p in problems) == [
        "plunk_events.E001",
        *["plunk_events.E002"] * 4,
        "plunk_events.E003",
        "plunk_events.E010",
        "plunk_events.E011",
        "plunk_events.E012",
    ]
    with override_settings(PLUNK_EVENTS="not a dict"):
        problems += check_settings()
    assert [p for p in problems if not p.hint] == []


def test_each_rule_is_registered_once():
    """``manage.py check`` runs the rules one by one: every problem is reported exactly once."""
    from django.core.checks import run_checks

    from plunk_events.checks import CHECKS

    with override_settings(PLUNK_EVENTS=BAD_SETTINGS):
        reported = [p for p in run_checks() if p.id.startswith("plunk_events.")]
        assert sorted(reported, key=str) == sorted(check_settings(), key=str)
    registered = set(registry.get_checks())
    assert set(CHECKS) <= registered
    assert check_settings not in registered
