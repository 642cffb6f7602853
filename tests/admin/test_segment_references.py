"""The admin's segment form checks ``segment.<id>`` references as the API does (field errors,
never a 500), and a saved DYNAMIC segment shows its live member count."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse

from plunk_events.models import Contact, Segment
from plunk_events.services import automation

pytestmark = pytest.mark.django_db


def form(project, condition, **overrides) -> dict:
    data = {
        "project": str(project.pk),
        "name": "Members",
        "description": "",
        "type": "DYNAMIC",
        "condition": json.dumps(condition),
    }
    return {**data, **overrides}


def member_of(segment_id) -> dict:
    return {
        "logic": "AND",
        "groups": [
            {"filters": [{"field": f"segment.{segment_id}", "operator": "memberOfSegment"}]}
        ],
    }


def test_an_unknown_reference_is_a_field_error(admin_client, project):
    missing = uuid.uuid4()
    url = reverse("admin:plunk_events_segment_add")
    response = admin_client.post(url, form(project, member_of(missing)))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "condition": [
            f"condition.groups.0.filters.0.field: Referenced segment not found: {missing}"
        ]
    }
    assert not Segment.objects.exists()


def test_a_self_reference_is_a_field_error(admin_client, project):
    segment = automation.create_segment(project, name="s", condition=member_of(
        automation.create_segment(project, name="static", type="STATIC").pk
    ))  # fmt: skip
    url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    response = admin_client.post(url, form(project, member_of(segment.pk)))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "condition": ["condition.groups.0.filters.0.field: A segment cannot reference itself"]
    }


def test_a_valid_reference_saves_with_a_live_count(admin_client, project):
    Contact.objects.create(project=project, email="a@example.com", data={"plan": "pro"})
    pros = automation.create_segment(
        project,
        name="pros",
        condition={"logic": "AND", "groups": [{"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}]},
    )  # fmt: skip
    url = reverse("admin:plunk_events_segment_add")
    response = admin_client.post(url, form(project, member_of(pros.pk)))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Segment.objects.get(name="Members").member_count == 1
