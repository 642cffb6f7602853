"""The DRF configuration of every plunk_events view, set per view so the host's global
``REST_FRAMEWORK`` settings cannot change the API's behaviour."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer

from ..services.errors import FieldErrorList, ValidationFailed
from .authentication import SecretKeyAuthentication
from .exceptions import REQUEST_ID_HEADER, plunk_exception_handler, request_id_for
from .parsers import StorableJSONParser, storable_string_problem


class PlunkAPIMixin:
    authentication_classes = [SecretKeyAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []
    parser_classes = [StorableJSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class = None
    filter_backends: list = []
    content_negotiation_class = None  # set below: always JSON

    def get_exception_handler(self):
        return plunk_exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Query and path values reach SQL too; one the database cannot store is a 422, not a 500.
        errors = FieldErrorList()
        values = [*request.query_params.items(), *kwargs.items()]
        for field, value in values:
            problem = isinstance(value, str) and storable_string_problem(value)
            if problem:
                errors.add(field, problem, "invalid_string")
        if errors:
            raise ValidationFailed(errors)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response[REQUEST_ID_HEADER] = request_id_for(request)
        return response

    @property
    def project(self):
        return self.request.auth


class IgnoreClientContentNegotiation:
    """Always answer JSON, whatever the Accept header says (Plunk does)."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


PlunkAPIMixin.content_negotiation_class = IgnoreClientContentNegotiation
