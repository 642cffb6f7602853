"""System checks: misconfiguration fails at ``manage.py check``, not at the first request."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    problems = []
    value = getattr(settings, "PLUNK_EVENTS", {})
    if not isinstance(value, dict):
        return [Error("PLUNK_EVENTS must be a dict.", id="plunk_events.E001")]
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        problems.append(
            Error(
                f"PLUNK_EVENTS has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="plunk_events.E001",
            )
        )
    for key in (
        "EVENTS_MAX_LIMIT",
        "BATCH_MAX_EVENTS",
        "BATCH_MAX_BYTES",
        "TRACK_MAX_BYTES",
        "DELETE_BATCH_SIZE",
        "IDEMPOTENCY_KEY_TTL_HOURS",
        "ROLLUP_LAG_SECONDS",
    ):
        if key in value and (
            not isinstance(value[key], int) or isinstance(value[key], bool) or value[key] <= 0
        ):
            problems.append(
                Error(f"PLUNK_EVENTS[{key!r}] must be a positive integer.", id="plunk_events.E002")
            )
    if not isinstance(value.get("TRACK_REQUIRE_PUBLIC_KEY", False), bool):
        problems.append(
            Error(
                "PLUNK_EVENTS['TRACK_REQUIRE_PUBLIC_KEY'] must be True or False.",
                id="plunk_events.E002",
            )
        )
    cache = value.get("API_KEY_CACHE_SECONDS", 0)
    if isinstance(cache, bool) or not isinstance(cache, int | float) or cache < 0:
        problems.append(
            Error(
                "PLUNK_EVENTS['API_KEY_CACHE_SECONDS'] must be 0 or more.", id="plunk_events.E002"
            )
        )
    seconds = value.get("DELETE_BATCH_SECONDS", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        problems.append(
            Error(
                "PLUNK_EVENTS['DELETE_BATCH_SECONDS'] must be a positive number.",
                id="plunk_events.E002",
            )
        )
    read_db = value.get("READ_DATABASE")
    if read_db and read_db not in settings.DATABASES:
        problems.append(
            Error(
                f"PLUNK_EVENTS['READ_DATABASE'] names {read_db!r}, which is not in DATABASES.",
                id="plunk_events.E003",
            )
        )
    problems += check_rate_limits(value)
    for app in ("rest_framework", "django_filters"):
        if not apps.is_installed(app):
            problems.append(
                Error(
                    f"plunk_events needs {app!r} in INSTALLED_APPS.",
                    id="plunk_events.E004",
                )
            )
    default_db = settings.DATABASES.get("default", {})
    if default_db.get("ENGINE", "").endswith("sqlite3") and (
        default_db.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE"
    ):
        problems.append(
            Warning(
                "SQLite without transaction_mode IMMEDIATE: concurrent tracks can fail with "
                "'database is locked'.",
                hint='Set DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE".',
                id="plunk_events.W001",
            )
        )
    return problems


def check_rate_limits(value: dict) -> list:
    """``RATE_LIMITS`` holds known scopes with rates DRF can parse; the cache alias exists."""
    from .api.throttling import RATE_HELP, SCOPES, parse_rate

    problems = []
    limits = value.get("RATE_LIMITS", {})
    if not isinstance(limits, dict):
        return [
            Error(
                "PLUNK_EVENTS['RATE_LIMITS'] must be a dict.",
                hint='e.g. {"track": "1000/second", "api": "500/second", "auth_failures": None}',
                id="plunk_events.E010",
            )
        ]
    for scope, rate in limits.items():
        if scope not in SCOPES:
            problems.append(
                Error(
                    f"PLUNK_EVENTS['RATE_LIMITS'] has an unknown scope {scope!r}.",
                    hint=f"Known scopes: {', '.join(SCOPES)}.",
                    id="plunk_events.E010",
                )
            )
            continue
        try:
            parse_rate(rate)
        except ValueError:
            problems.append(
                Error(
                    f"PLUNK_EVENTS['RATE_LIMITS'][{scope!r}] = {rate!r} is not a rate.",
                    hint=f"{RATE_HELP} None disables the limit.",
                    id="plunk_events.E010",
                )
            )
    alias = value.get("RATE_LIMIT_CACHE", "default")
    if alias not in settings.CACHES:
        problems.append(
            Error(
                f"PLUNK_EVENTS['RATE_LIMIT_CACHE'] names {alias!r}, which is not in CACHES.",
                hint="Name a cache alias shared by every worker, e.g. a Redis cache.",
                id="plunk_events.E011",
            )
        )
    return problems
