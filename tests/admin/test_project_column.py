"""Issue 13: no Project column when a changelist shows one project, on every changelist that
has one (events and contacts are always scoped to one; segments and workflows when their
project filter picks one)."""

from __future__ import annotations

import pytest

from plunk_events.services import automation, workflows

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["segment", "workflow"])
def test_the_project_column_goes_when_the_filter_picks_one_project(
    admin_client, project, other_project, model
):
    automation.create_segment(project, name="Buyers", condition=None, type="STATIC")
    workflows.create_workflow(project, name="Flow", event_name="signed_up")
    url = f"/admin/plunk_events/{model}/"

    every_project = admin_client.get(url)
    one_project = admin_client.get(url, {"project__id__exact": str(project.pk)})

    assert "project" in every_project.context["cl"].list_display
    assert "project" not in one_project.context["cl"].list_display
    assert "column-project" in every_project.content.decode()
    assert "column-project" not in one_project.content.decode()


@pytest.mark.parametrize("model", ["event", "contact"])
def test_project_scoped_changelists_have_no_project_column(admin_client, project, model):
    response = admin_client.get(f"/admin/plunk_events/{model}/", {"project": str(project.pk)})
    assert "project" not in response.context["cl"].list_display
