"""System checks: misconfiguration fails at ``manage.py check``, not at the first request.

One registered function per rule, each error with a hint; :func:`check_settings` runs them all
at once for callers that want every problem in one list.
"""

from __future__ import annotations

import ipaddress

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS

#: Settings that must be positive integers (plunk_events.E002).
POSITIVE_INTEGERS = (
    "EVENTS_MAX_LIMIT",
    "BATCH_MAX_EVENTS",
    "BATCH_MAX_BYTES",
    "TRACK_MAX_BYTES",
    "SEND_MAX_BYTES",
    "DELETE_BATCH_SIZE",
    "IDEMPOTENCY_KEY_TTL_HOURS",
    "ROLLUP_LAG_SECONDS",
    "ADMIN_STATS_BUDGET_MS",
    "TICK_SECONDS",
    "ROLLUP_SECONDS",
    "SEGMENT_RECOMPUTE_SECONDS",
    "DISPATCH_SWEEP_SECONDS",
    "DISPATCH_SETTLE_SECONDS",
    "WORKFLOW_SWEEP_SECONDS",
    "WORKFLOW_STALLED_SECONDS",
)
REQUIRED_APPS = ("rest_framework", "django_filters")
SETTINGS_HINT = 'See "Settings" in the README of plunk-events.'


def _plunk_settings() -> dict:
    """``PLUNK_EVENTS`` when it is a dict, else ``{}`` (:func:`check_settings_type` reports it)."""
    value = getattr(settings, "PLUNK_EVENTS", {})
    return value if isinstance(value, dict) else {}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@register(Tags.compatibility)
def check_settings_type(app_configs=None, **kwargs):
    if isinstance(getattr(settings, "PLUNK_EVENTS", {}), dict):
        return []
    return [
        Error(
            "PLUNK_EVENTS must be a dict.",
            hint=f'e.g. PLUNK_EVENTS = {{"TRACK_REQUIRE_PUBLIC_KEY": True}}. {SETTINGS_HINT}',
            id="plunk_events.E001",
        )
    ]


@register(Tags.compatibility)
def check_unknown_keys(app_configs=None, **kwargs):
    unknown = sorted(set(_plunk_settings()) - set(DEFAULTS))
    if not unknown:
        return []
    return [
        Error(
            f"PLUNK_EVENTS has unknown keys: {', '.join(unknown)}.",
            hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
            id="plunk_events.E001",
        )
    ]


@register(Tags.compatibility)
def check_positive_integers(app_configs=None, **kwargs):
    value = _plunk_settings()
    return [
        Error(
            f"PLUNK_EVENTS[{key!r}] must be a positive integer.",
            hint=f"e.g. {DEFAULTS[key]!r}, the default. {SETTINGS_HINT}",
            id="plunk_events.E002",
        )
        for key in POSITIVE_INTEGERS
        if key in value
        and (not isinstance(value[key], int) or isinstance(value[key], bool) or value[key] <= 0)
    ]


@register(Tags.compatibility)
def check_track_require_public_key(app_configs=None, **kwargs):
    if isinstance(_plunk_settings().get("TRACK_REQUIRE_PUBLIC_KEY", False), bool):
        return []
    return [
        Error(
            "PLUNK_EVENTS['TRACK_REQUIRE_PUBLIC_KEY'] must be True or False.",
            hint="True: /v1/track accepts only the public key, as Plunk does; False (the "
            "default): the secret key too.",
            id="plunk_events.E002",
        )
    ]


@register(Tags.compatibility)
def check_api_key_cache_seconds(app_configs=None, **kwargs):
    cache = _plunk_settings().get("API_KEY_CACHE_SECONDS", 0)
    if _is_number(cache) and cache >= 0:
        return []
    return [
        Error(
            "PLUNK_EVENTS['API_KEY_CACHE_SECONDS'] must be 0 or more.",
            hint=f"Seconds, e.g. {DEFAULTS['API_KEY_CACHE_SECONDS']} (the default); 0 looks "
            "keys up on every request.",
            id="plunk_events.E002",
        )
    ]


@register(Tags.compatibility)
def check_positive_seconds(app_configs=None, **kwargs):
    errors = []
    for name in ("DELETE_BATCH_SECONDS", "DISPATCH_DELAY_SECONDS"):
        seconds = _plunk_settings().get(name, DEFAULTS[name])
        if not (_is_number(seconds) and seconds > 0):
            errors.append(
                Error(
                    f"PLUNK_EVENTS['{name}'] must be a positive number.",
                    hint=f"Seconds, e.g. {DEFAULTS[name]} (the default).",
                    id="plunk_events.E002",
                )
            )
    return errors


@register(Tags.compatibility)
def check_read_database(app_configs=None, **kwargs):
    read_db = _plunk_settings().get("READ_DATABASE")
    if not read_db or read_db in settings.DATABASES:
        return []
    return [
        Error(
            f"PLUNK_EVENTS['READ_DATABASE'] names {read_db!r}, which is not in DATABASES.",
            hint=f"Name one of: {', '.join(settings.DATABASES)}; or None to read from the "
            "default database.",
            id="plunk_events.E003",
        )
    ]


@register(Tags.compatibility)
def check_rate_limits(app_configs=None, **kwargs):
    """``RATE_LIMITS`` is a dict of known scopes with rates DRF can parse."""
    from .api.throttling import RATE_HELP, SCOPES, parse_rate

    limits = _plunk_settings().get("RATE_LIMITS", {})
    if not isinstance(limits, dict):
        return [
            Error(
                "PLUNK_EVENTS['RATE_LIMITS'] must be a dict.",
                hint='e.g. {"track": "1000/second", "api": "500/second", "auth_failures": None}',
                id="plunk_events.E010",
            )
        ]
    problems = []
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
    return problems


@register(Tags.compatibility)
def check_rate_limit_cache(app_configs=None, **kwargs):
    alias = _plunk_settings().get("RATE_LIMIT_CACHE", "default")
    if alias in settings.CACHES:
        return []
    return [
        Error(
            f"PLUNK_EVENTS['RATE_LIMIT_CACHE'] names {alias!r}, which is not in CACHES.",
            hint="Name a cache alias shared by every worker, e.g. a Redis cache.",
            id="plunk_events.E011",
        )
    ]


@register(Tags.compatibility)
def check_webhook_allow_private_networks(app_configs=None, **kwargs):
    """A list of networks (``ipaddress.ip_network``, host bits allowed)."""
    value = _plunk_settings().get("WEBHOOK_ALLOW_PRIVATE_NETWORKS", ())
    if not isinstance(value, list | tuple):
        problem = f"must be a list, not {type(value).__name__}"
    else:
        bad = []
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except (TypeError, ValueError):
                bad.append(repr(entry))
        if not bad:
            return []
        problem = f"has entries that are not networks: {', '.join(bad)}"
    return [
        Error(
            f"PLUNK_EVENTS['WEBHOOK_ALLOW_PRIVATE_NETWORKS'] {problem}.",
            hint='CIDR strings, e.g. ["10.1.2.0/24", "fd00::/8"]; the default, [], lets '
            "webhooks reach public addresses only.",
            id="plunk_events.E012",
        )
    ]


@register(Tags.compatibility)
def check_required_apps(app_configs=None, **kwargs):
    return [
        Error(
            f"plunk_events needs {app!r} in INSTALLED_APPS.",
            hint=f"Add {app!r} to INSTALLED_APPS (it comes with plunk-events' dependencies).",
            id="plunk_events.E004",
        )
        for app in REQUIRED_APPS
        if not apps.is_installed(app)
    ]


@register(Tags.compatibility)
def check_sqlite_transaction_mode(app_configs=None, **kwargs):
    default_db = settings.DATABASES.get("default", {})
    if not default_db.get("ENGINE", "").endswith("sqlite3") or (
        default_db.get("OPTIONS", {}).get("transaction_mode") == "IMMEDIATE"
    ):
        return []
    return [
        Warning(
            "SQLite without transaction_mode IMMEDIATE: concurrent tracks can fail with "
            "'database is locked'.",
            hint='Set DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE".',
            id="plunk_events.W001",
        )
    ]


PUBLIC_URL_HINT = (
    'Set PLUNK_EVENTS["PUBLIC_URL"] to the address the site is served at, e.g. '
    '"https://example.com" (https: mailbox providers need it for one-click unsubscribe); '
    "silence plunk_events.W002 if the site sends no email."
)


def _public_url_warning(problem: str) -> Warning:
    return Warning(
        f'PLUNK_EVENTS["PUBLIC_URL"] {problem}: links in email are relative and marketing mail '
        "goes without List-Unsubscribe.",
        hint=PUBLIC_URL_HINT,
        id="plunk_events.W002",
    )


@register(Tags.compatibility)
def check_public_url(app_configs=None, **kwargs):
    """A ``PUBLIC_URL`` that is set but unusable is a mistake wherever the site runs."""
    from .services.email_links import public_url_problem

    value = _plunk_settings().get("PUBLIC_URL")
    problem = public_url_problem(value)
    return [] if value is None or problem is None else [_public_url_warning(problem)]


@register(Tags.compatibility, deploy=True)
def check_public_url_deploy(app_configs=None, **kwargs):
    """An unset ``PUBLIC_URL`` matters only where mail goes out: ``manage.py check --deploy``
    (not in :data:`CHECKS`; the settings of development and tests need no public address).
    So does a plain http:// one: RFC 8058 one-click unsubscribe needs https."""
    value = _plunk_settings().get("PUBLIC_URL")
    if value is None:
        return [_public_url_warning("is not set")]
    if isinstance(value, str) and value.lower().startswith("http://"):
        return [
            Warning(
                'PLUNK_EVENTS["PUBLIC_URL"] is an http:// address: mailbox providers accept '
                "one-click unsubscribe (RFC 8058) only over https.",
                hint=PUBLIC_URL_HINT,
                id="plunk_events.W002",
            )
        ]
    return []


#: Every rule, in the order :func:`check_settings` reports them.
CHECKS = (
    check_settings_type,
    check_unknown_keys,
    check_positive_integers,
    check_track_require_public_key,
    check_api_key_cache_seconds,
    check_positive_seconds,
    check_read_database,
    check_rate_limits,
    check_rate_limit_cache,
    check_webhook_allow_private_networks,
    check_required_apps,
    check_sqlite_transaction_mode,
    check_public_url,
)


def check_settings(app_configs=None, **kwargs):
    """The problems of every rule in :data:`CHECKS` (not registered: they are, one by one)."""
    return [problem for check in CHECKS for problem in check(app_configs, **kwargs)]
