"""The schema is ready to be distributed by project (Citus): every tenant table carries the
project, and every index and unique constraint starts with it (issue 4)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection, models

from plunk_events.models import PeriodicSchedule, Project

#: Every table but the projects and the app-wide periodic job schedule (a few rows; a Citus
#: reference table).
TENANT_MODELS = [
    m
    for m in apps.get_app_config("plunk_events").get_models()
    if m not in (Project, PeriodicSchedule)
]

#: The one exception: a provider's tracking webhook names only its message id, not the project
#: (on Citus this lookup fans out to every shard; it is one row per webhook).
NOT_BY_PROJECT = {"plunk_email_message_id"}


def test_every_tenant_model_has_a_project_foreign_key():
    assert len(TENANT_MODELS) >= 9
    for model in TENANT_MODELS:
        field = model._meta.get_field("project")
        assert isinstance(field, models.ForeignKey), model
        assert field.related_model is Project


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_indexes_and_unique_constraints_start_with_project(model):
    for index in model._meta.indexes:
        if index.name in NOT_BY_PROJECT:
            continue
        assert index.fields[0].lstrip("-") == "project", (model.__name__, index.name)
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            assert constraint.fields[0] == "project", (model.__name__, constraint.name)
    for fld in model._meta.fields:
        # A single-column index or unique on anything but the primary key would not start with
        # the project (foreign keys set db_index=False; the composite indexes cover them).
        if fld.primary_key:
            continue
        assert not fld.unique, (model.__name__, fld.name)
        assert not fld.db_index, (model.__name__, fld.name)


@pytest.mark.django_db
@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_database_indexes_start_with_project(model):
    """Checks the migrated database itself, not only the model state."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    for name, info in constraints.items():
        if info["primary_key"] or info["foreign_key"] or info.get("check"):
            continue
        if not (info["index"] or info["unique"]) or name in NOT_BY_PROJECT:
            continue
        assert info["columns"][0] == "project_id", (model.__name__, name, info["columns"])
