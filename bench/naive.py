"""The naive baseline for ``POST /v1/track``: what a first DRF + ORM version looks like.

DRF ``Serializer`` validation, ``get_or_create`` for the contact, a Python dict merge and
``save()``, then ``Event.objects.create``: five to six queries per request and a lost-update race
on the contact's data. Kept here, never in the app, only to measure against.
It uses the app's key authentication and DRF's default parsers and renderers.
"""

from __future__ import annotations

from django.db import transaction
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from plunk_events.api.authentication import TrackKeyAuthentication
from plunk_events.models import Contact, Event


class NaiveTrackSerializer(serializers.Serializer):
    event = serializers.CharField(max_length=255)
    email = serializers.EmailField(max_length=320)
    subscribed = serializers.BooleanField(required=False, allow_null=True, default=None)
    data = serializers.DictField(required=False, allow_null=True, default=None)


class NaiveTrackView(APIView):
    authentication_classes = [TrackKeyAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request):
        serializer = NaiveTrackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        project = request.auth
        data = values["data"] or {}
        with transaction.atomic():
            contact, created = Contact.objects.get_or_create(
                project=project,
                email=values["email"].strip().lower(),
                defaults={
                    "data": data or None,
                    "subscribed": True if values["subscribed"] is None else values["subscribed"],
                },
            )
            if not created:
                merged = {**(contact.data or {}), **data}
                contact.data = {k: v for k, v in merged.items() if v is not None} or None
                if values["subscribed"] is not None:
                    contact.subscribed = values["subscribed"]
                contact.save()
            event = Event.objects.create(
                project=project, contact=contact, name=values["event"], data=values["data"]
            )
        return Response(
            {
                "success": True,
                "data": {
                    "contact": str(contact.id),
                    "event": str(event.id),
                    "timestamp": event.created_at.isoformat(),
                },
            }
        )
