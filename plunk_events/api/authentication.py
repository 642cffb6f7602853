"""``Authorization: Bearer <key>`` authentication against a project's key pair.

``SecretKeyAuthentication`` guards the dashboard routes (``sk_`` only); ``TrackKeyAuthentication``
guards ``/v1/track`` (``pk_``, and ``sk_`` unless ``TRACK_REQUIRE_PUBLIC_KEY``). Every failure is
a 401 in the error envelope; ``authenticate_header`` keeps DRF from turning it into a 403.

Secret keys are stored as SHA-256 digests (:func:`plunk_events.models.hash_key`): a presented key
is hashed once and looked up, and cached, by its digest; public keys are looked up as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.utils.crypto import constant_time_compare
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from ..conf import conf
from ..models import Project, hash_key
from ..services.dispatch import CONSUMERS_ATTR, CONSUMERS_FLAG
from ..services.projects import key_cache

BEARER_FORMAT = (
    'Authorization header must use Bearer token format: "Authorization: Bearer YOUR_API_KEY"'
)
MISSING_AUTH_SUGGESTION = (
    'Include an Authorization header with format: "Authorization: Bearer YOUR_API_KEY"'
)
INVALID_KEY_SUGGESTION = (
    'Verify your API key is correct and starts with "sk_" for secret keys or "pk_" for public keys.'
)
INVALID_SECRET_KEY = (
    "Invalid secret API key. This endpoint requires a secret key (sk_*), not a public key."
)
#: Plunk's words on /v1/track, where it takes only the public key (TRACK_REQUIRE_PUBLIC_KEY).
INVALID_PUBLIC_KEY = (
    "Invalid public API key. Ensure you are using a public key (pk_*) for this endpoint."
)
#: On /v1/track when the secret key is accepted too (the default).
INVALID_TRACK_KEY = (
    "Invalid API key. This endpoint accepts a public key (pk_*) or a secret key (sk_*)."
)


def _one(queryset) -> Project | None:
    """The first row, without the ORDER BY that ``.first()`` would add to a unique lookup."""
    return next(iter(queryset.order_by()[:1]), None)


class ApiKeyError(exceptions.AuthenticationFailed):
    """A 401 carrying Plunk's error code and suggestion."""

    def __init__(self, code: str, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.plunk_code = code
        self.suggestion = suggestion


@dataclass(frozen=True)
class ProjectPrincipal:
    """``request.user`` of an API request: the project the key belongs to."""

    project: Project
    key_kind: str  # "public" or "secret"

    is_authenticated = True
    is_anonymous = False


class _ProjectKeyAuthentication(BaseAuthentication):
    missing_code = "UNAUTHORIZED"
    missing_message = "You need to be authenticated to do this"
    missing_suggestion: str | None = None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            raise ApiKeyError(self.missing_code, self.missing_message, self.missing_suggestion)
        try:
            parts = header.decode("ascii").split(" ")
        except UnicodeDecodeError:
            parts = []
        if len(parts) != 2 or parts[0] != "Bearer" or not parts[1]:
            raise ApiKeyError("MISSING_AUTH", BEARER_FORMAT, MISSING_AUTH_SUGGESTION)
        key = parts[1]
        digest = hash_key(key)
        scope = self.cache_scope()
        project = key_cache.get(scope, digest)
        if project is None:
            project = self.find_project(key, digest)
            if project is None:
                raise ApiKeyError("INVALID_API_KEY", self.invalid_message(), INVALID_KEY_SUGGESTION)
            key_cache.put(scope, digest, project)
        kind = "secret" if constant_time_compare(project.secret_key_hash, digest) else "public"
        return ProjectPrincipal(project, kind), project

    def find_project(self, key: str, digest: str) -> Project | None:
        """The project ``key`` (whose :func:`hash_key` is ``digest``) opens, if any."""
        raise NotImplementedError

    def invalid_message(self) -> str:
        """The message of the 401 for a key this class does not accept."""
        raise NotImplementedError

    def cache_scope(self) -> str:
        """Which keys this class accepts: a key found by one class is not valid for another."""
        return type(self).__name__


class SecretKeyAuthentication(_ProjectKeyAuthentication):
    def invalid_message(self) -> str:
        return INVALID_SECRET_KEY

    def find_project(self, key: str, digest: str) -> Project | None:
        project = _one(Project.objects.filter(secret_key_hash=digest))
        if project is not None and constant_time_compare(project.secret_key_hash, digest):
            return project
        return None


class TrackKeyAuthentication(_ProjectKeyAuthentication):
    missing_code = "MISSING_AUTH"
    missing_message = "Authorization header is required"
    missing_suggestion = MISSING_AUTH_SUGGESTION

    def invalid_message(self) -> str:
        return INVALID_PUBLIC_KEY if conf.TRACK_REQUIRE_PUBLIC_KEY else INVALID_TRACK_KEY

    def cache_scope(self) -> str:
        return f"track:{'public' if conf.TRACK_REQUIRE_PUBLIC_KEY else 'any'}"

    def find_project(self, key: str, digest: str) -> Project | None:
        if conf.TRACK_REQUIRE_PUBLIC_KEY:
            match = Q(public_key=key)
        else:
            match = Q(public_key=key) | Q(secret_key_hash=digest)
        # The dispatcher's nudge reads this flag (segments, workflows): no statement of its own.
        project = _one(Project.objects.filter(match).annotate(**{CONSUMERS_ATTR: CONSUMERS_FLAG}))
        if project is None:
            return None
        if constant_time_compare(project.public_key, key) or (
            not conf.TRACK_REQUIRE_PUBLIC_KEY
            and constant_time_compare(project.secret_key_hash, digest)
        ):
            return project
        return None
