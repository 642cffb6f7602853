"""drf-spectacular extensions: describe the Bearer key authentication and named enums
(imported in ``ready()``)."""

from __future__ import annotations

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)


class SecretKeyScheme(OpenApiAuthenticationExtension):
    target_class = "plunk_events.api.authentication.SecretKeyAuthentication"
    name = "secretKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The project's secret key, `sk_...`.",
        }


class TrackKeyScheme(OpenApiAuthenticationExtension):
    target_class = "plunk_events.api.authentication.TrackKeyAuthentication"
    name = "trackKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The project's public key `pk_...` (or its secret key unless "
            "`TRACK_REQUIRE_PUBLIC_KEY`).",
        }


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):
    """A :class:`~plunk_events.api.serializers.NamedChoiceField`'s enum, as its named component."""

    target_class = "plunk_events.api.serializers.NamedChoiceField"

    def get_name(self):
        return self.target.enum_name

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "enum": list(self.target.choices)}
