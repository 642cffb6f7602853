"""Settings of the app, read lazily from the one ``PLUNK_EVENTS`` dict of the host site."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Plunk accepts only the public key on /v1/track; by default we accept the secret key too.
    "TRACK_REQUIRE_PUBLIC_KEY": False,
    # Cap on ``limit`` for GET /events and /events/contact/<id>.
    "EVENTS_MAX_LIMIT": 1000,
    # Largest POST /v1/track body in bytes (413 above it).
    "TRACK_MAX_BYTES": 1024 * 1024,
    # Largest POST /v1/track/batch: number of items and body size in bytes.
    "BATCH_MAX_EVENTS": 500,
    "BATCH_MAX_BYTES": 500 * 1024,
    # Largest POST /v1/send body in bytes (413 above it): room for 10 MB of attachments in base64.
    "SEND_MAX_BYTES": 20 * 1024 * 1024,
    # Events deleted per transaction by DELETE /events/<name> (at most), and the time a batch
    # may take before the next one is halved.
    "DELETE_BATCH_SIZE": 5000,
    "DELETE_BATCH_SECONDS": 0.25,
    # The lease of the worker running a delete job: every batch commit renews it, and a job
    # whose lease ran out (its worker was killed) is taken over by the next DELETE of the name,
    # a segment or workflow write naming it, or ``plunk_resume_deletions``. Keep it well above
    # the longest batch (statement_timeout) and the clock skew between hosts.
    "DELETE_LEASE_SECONDS": 30,
    # Events older than this many seconds are folded into the rollups behind names and stats;
    # keep it well above the longest track transaction (statement_timeout).
    "ROLLUP_LAG_SECONDS": 60,
    # Periodic work (plunk_events.tasks, README "Background work"): how often the tick looks
    # for due jobs, on the task worker (a backend that can defer tasks) or from ``manage.py
    # plunk_tick`` (cron). A chain whose pending tick is three ticks (at least 30 s) overdue
    # counts as lost and is restarted.
    "TICK_SECONDS": 60,
    # How often the periodic tick folds every project's rollups and purges expired
    # idempotency keys (what ``manage.py plunk_rollup`` does); at most once a tick.
    "ROLLUP_SECONDS": 60,
    # How often the periodic tick recomputes every tracked segment (time windows that expire
    # without any event) and refreshes the cached counts of the others (README "Segments").
    "SEGMENT_RECOMPUTE_SECONDS": 300,
    # After a write that recorded events, how long the dispatch of the project's new events
    # (segment re-evaluation) waits to gather more of them, where the task backend can defer:
    # at most one dispatch task per project per this many seconds and process.
    "DISPATCH_DELAY_SECONDS": 0.5,
    # How often the periodic tick dispatches every project's new events anyway (a nudge lost
    # with a crashed process); at most once a tick.
    "DISPATCH_SWEEP_SECONDS": 60,
    # Workflow enrollment reads an event again until it is this many seconds old, so an event
    # whose transaction commits after a newer one was dispatched still starts its executions;
    # keep it above your longest track transaction (statement_timeout).
    "DISPATCH_SETTLE_SECONDS": 10,
    # How often the periodic tick resumes workflow work whose task was lost: due DELAYs and
    # wait timeouts, and runs left RUNNING by a worker that died.
    "WORKFLOW_SWEEP_SECONDS": 60,
    # A RUNNING workflow execution untouched this long is taken to be stalled (its worker
    # died): the periodic job runs its current step again (a WEBHOOK is delivered again with
    # the same Idempotency-Key). Keep it above the webhook timeout (10 s).
    "WORKFLOW_STALLED_SECONDS": 60,
    # How long an Idempotency-Key stays claimed.
    "IDEMPOTENCY_KEY_TTL_HOURS": 24,
    # A repeat of a request with the same Idempotency-Key, method, path and body gets the first
    # 2xx response again, byte for byte (header Idempotent-Replayed: true), instead of Plunk's
    # 409 IDEMPOTENCY_KEY_REUSED; a different request with the key still gets the 409.
    "IDEMPOTENCY_REPLAY": False,
    # How long a worker remembers which project an API key belongs to (0: look it up on
    # every request). A regenerated key pair may keep working this long in other workers.
    "API_KEY_CACHE_SECONDS": 5,
    # Database alias for reads when plunk_events.routers.ReadReplicaRouter is installed.
    "READ_DATABASE": None,
    # Requests allowed per scope, in DRF's "N/period" syntax (period: second, minute, hour,
    # day); None: no limit. A site's dict overrides these key by key. "track" (/v1/track and
    # /v1/track/batch) and "api" (every other route) count per project; "auth_failures" counts
    # failed authentications per client IP (REMOTE_ADDR). Sliding windows: the cache keeps one
    # timestamp per counted request, so prefer short periods for large numbers.
    "RATE_LIMITS": {"track": "1000/second", "api": "500/second", "auth_failures": "60/minute"},
    # Alias in CACHES holding the throttle state; share it (Redis) across workers and servers.
    "RATE_LIMIT_CACHE": "default",
    # WEBHOOK steps refuse targets whose address is private, loopback, link-local, multicast,
    # reserved or shared (100.64/10), IPv4-mapped and other embedded forms included (SSRF
    # guard); addresses in these CIDR networks are let through, e.g. ["10.1.2.0/24"] for an
    # internal receiver, ["127.0.0.1/32"] for a test server.
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": (),
    # PostgreSQL only: time budget in milliseconds of the admin statistics pages' unique and top
    # contacts queries (they read every event of the window); past it the page shows "not
    # computed" for them instead of waiting.
    "ADMIN_STATS_BUDGET_MS": 1000,
    # Scheme and host of the site serving the app's pages ("https://example.com"): the
    # unsubscribe, subscribe and manage links in mail and the List-Unsubscribe header are this
    # plus the pages' paths (reversed, so the app's mount prefix is included). Unset, links are relative and
    # marketing mail goes without List-Unsubscribe (a system check warns).
    "PUBLIC_URL": None,
    # Sender of /v1/send messages that name none and whose template has none; None: Django's
    # DEFAULT_FROM_EMAIL.
    "DEFAULT_FROM_EMAIL": None,
}


class Settings:
    """Attribute access to ``settings.PLUNK_EVENTS[KEY]`` with documented defaults."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(name)
        return getattr(settings, "PLUNK_EVENTS", {}).get(name, DEFAULTS[name])


conf = Settings()
