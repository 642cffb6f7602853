"""Rate limits: DRF throttles over Django's cache, with rates from ``PLUNK_EVENTS["RATE_LIMITS"]``.

Three scopes, each ``"N/period"`` (DRF's syntax) or ``None`` for no limit:

* ``track``: ``/v1/track`` and ``/v1/track/batch``, per project (a batch is one request);
* ``api``: every other route (events, contacts, segments, workflows), per project;
* ``auth_failures``: failed authentications per client IP (``REMOTE_ADDR``); once an address is
  over it, its requests are refused with 429 before the key is even looked up.

The state is DRF's: a list of request times per key in the cache named by
``PLUNK_EVENTS["RATE_LIMIT_CACHE"]`` (a sliding window). Reads and writes of that list are not
atomic, so concurrent requests may undercount a little; the limits are a guard against runaway
clients, not a meter. A local-memory cache counts per process; share one (Redis) across workers.
When the cache fails (Redis down), requests go through unlimited and a warning is logged.
"""

from __future__ import annotations

import logging
import math

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import SimpleRateThrottle

from ..conf import DEFAULTS, conf

logger = logging.getLogger("plunk_events")

SCOPES = ("track", "api", "auth_failures")

#: Period names DRF understands (it reads the first letter); we accept these spellings only.
PERIODS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}

RATE_HELP = 'Use "N/period" with N >= 1 and period second, minute, hour or day (e.g. "100/minute").'


def parse_rate(rate: object) -> tuple[int, int] | None:
    """``"N/period"`` as ``(N, seconds)``; ``None`` stays ``None``; anything else ValueError."""
    if rate is None:
        return None
    if not isinstance(rate, str):
        raise ValueError(f"{rate!r} is not a string")
    number, slash, period = rate.strip().partition("/")
    number, period = number.strip(), period.strip().lower()
    if not slash or not number.isdigit() or int(number) < 1 or period not in PERIODS:
        raise ValueError(f"{rate!r} is not N/period")
    return int(number), PERIODS[period]


def rate_limits() -> dict[str, str | None]:
    """The rate of each scope: the defaults, overridden key by key by the site's setting."""
    configured = conf.RATE_LIMITS
    if not isinstance(configured, dict):
        raise ImproperlyConfigured("PLUNK_EVENTS['RATE_LIMITS'] must be a dict.")
    return {**DEFAULTS["RATE_LIMITS"], **configured}


class PlunkRateThrottle(SimpleRateThrottle):
    """DRF's sliding-window throttle with our rates, cache alias, keys and headers."""

    scope: str
    cache_format = "plunk_events:throttle:%(scope)s:%(ident)s"
    message = "Rate limit exceeded"

    def __init__(self) -> None:
        self.rate = rate_limits()[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.cache = caches[conf.RATE_LIMIT_CACHE]
        self.key = None

    def parse_rate(self, rate):
        try:
            return parse_rate(rate) or (None, None)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"PLUNK_EVENTS['RATE_LIMITS'][{self.scope!r}]: {exc}. {RATE_HELP}"
            ) from exc

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # the cache is down: serve unlimited rather than fail
            self.cache_failed(exc)
            return True

    def cache_failed(self, exc: Exception) -> None:
        logger.warning("Rate limit %r not applied, its cache failed: %r", self.scope, exc)
        self.key = None

    def wait(self) -> float | None:
        """Seconds until one more request fits (DRF spreads the wait over the free slots)."""
        if not self.history or len(self.history) < self.num_requests:
            return None
        return max(0.0, self.history[self.num_requests - 1] + self.duration - self.now)

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit``/``-Remaining``/``-Reset`` (IETF draft names) after this request.

        Reset is the number of seconds until the oldest request in the window leaves it, that
        is until Remaining grows again; on a 429 it equals ``Retry-After``.
        """
        if self.key is None:
            return {}
        remaining = max(0, self.num_requests - len(self.history))
        if remaining == 0:
            reset = max(1.0, self.wait() or 0.0)
        elif self.history:
            reset = self.history[-1] + self.duration - self.now
        else:
            reset = 0.0
        return {
            "RateLimit-Limit": str(self.num_requests),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(max(0, math.ceil(reset))),
        }


class ProjectRateThrottle(PlunkRateThrottle):
    """Requests per project (whichever of its keys they use) and scope."""

    def get_cache_key(self, request, view):
        project = getattr(request, "auth", None)
        if project is None or getattr(project, "pk", None) is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": project.pk}


class TrackRateThrottle(ProjectRateThrottle):
    scope = "track"


class ApiRateThrottle(ProjectRateThrottle):
    scope = "api"


class AuthFailureThrottle(PlunkRateThrottle):
    """Failed authentications per client address.

    ``allow_request`` only looks (an address over the limit is refused before its key is
    checked); ``record_failure`` counts a failure. The address is ``REMOTE_ADDR``, never
    ``X-Forwarded-For``: behind a proxy, set ``REMOTE_ADDR`` to the client's address first.
    """

    scope = "auth_failures"
    message = "Too many failed authentication attempts from this address"

    def get_cache_key(self, request, view):
        address = request.META.get("REMOTE_ADDR") or "unknown"
        return self.cache_format % {"scope": self.scope, "ident": address}

    def throttle_success(self) -> bool:
        return True  # looking is not a failure

    def record_failure(self, request, view) -> None:
        if self.rate is None:
            return
        self.key = self.get_cache_key(request, view)
        self.now = self.timer()
        try:
            # Read again: the authentication in between may have taken a while.
            history = self.cache.get(self.key, [])
            self.history = [t for t in history if t > self.now - self.duration]
            self.history.insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)
        except Exception as exc:
            self.cache_failed(exc)
