"""The DRF configuration of every plunk_events view, set per view so the host's global
``REST_FRAMEWORK`` settings cannot change the API's behaviour."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer

from ..services.errors import FieldErrorList, ValidationFailed
from .authentication import SecretKeyAuthentication
from .exceptions import REQUEST_ID_HEADER, plunk_exception_handler, request_id_for
from .parsers import StorableJSONParser, json_body_encoding, storable_string_problem
from .throttling import ApiRateThrottle, AuthFailureThrottle, PlunkRateThrottle


class PlunkAPIMixin:
    authentication_classes = [SecretKeyAuthentication]
    permission_classes = [IsAuthenticated]
    #: Per project: ``ApiRateThrottle`` here, ``TrackRateThrottle`` on ``/v1/track*``.
    throttle_classes: list = [ApiRateThrottle]
    parser_classes = [StorableJSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class = None
    filter_backends: list = []
    content_negotiation_class = None  # set below: always JSON

    def get_exception_handler(self):
        return plunk_exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if has_body(request):
            # Checked on every route, before anything reads the body: a 415, not a decompression.
            json_body_encoding(request.content_type)
        # Query and path values reach SQL too; one the database cannot store is a 422, not a 500.
        errors = FieldErrorList()
        values = [*request.query_params.items(), *kwargs.items()]
        for field, value in values:
            problem = isinstance(value, str) and storable_string_problem(value)
            if problem:
                errors.add(field, problem, "invalid_string")
        if errors:
            raise ValidationFailed(errors)

    def perform_authentication(self, request):
        """Refuse an address over ``auth_failures`` before checking its key; count failures."""
        guard = AuthFailureThrottle() if self.authentication_classes else None
        if guard is not None and not guard.allow_request(request, self):
            self.rate_limited_by = guard
            self.throttled_by(guard)
        try:
            super().perform_authentication(request)
        except (exceptions.AuthenticationFailed, exceptions.NotAuthenticated):
            if guard is not None and guard.rate is not None:
                guard.record_failure(request, self)
                self.rate_limited_by = guard
            raise

    def check_throttles(self, request):
        for throttle in self.get_throttles():
            allowed = throttle.allow_request(request, self)
            if throttle.key is not None:
                self.rate_limited_by = throttle  # its headers go on the response
            if not allowed:
                self.throttled_by(throttle)

    def throttled_by(self, throttle: PlunkRateThrottle):
        raise exceptions.Throttled(throttle.wait(), detail=f"{throttle.message}.")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response[REQUEST_ID_HEADER] = request_id_for(request)
        throttle = getattr(self, "rate_limited_by", None)
        if throttle is not None:
            for header, value in throttle.headers().items():
                response[header] = value
        return response

    @property
    def project(self):
        return self.request.auth


def has_body(request) -> bool:
    meta = request.META
    return meta.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in meta


class IgnoreClientContentNegotiation:
    """Always answer JSON, whatever the Accept header says (Plunk does); read only JSON bodies."""

    def select_parser(self, request, parsers):
        json_body_encoding(request.content_type)
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


PlunkAPIMixin.content_negotiation_class = IgnoreClientContentNegotiation
