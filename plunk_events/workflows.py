"""Python API of workflow executions: what ``/workflows/<id>/executions`` does, for host code.

Each function takes model instances and raises ``plunk_events.services.errors.PlunkError``
(``ValidationFailed`` for bad input) as the routes answer 4xx.
"""

from __future__ import annotations

from typing import Any

from .models import Contact, Workflow, WorkflowExecution
from .services import executions as _service


def start(workflow: Workflow, contact: Contact, context: dict[str, Any] | None = None):
    """Start ``workflow`` for ``contact`` (``POST /workflows/<id>/executions``); returns the
    new RUNNING :class:`~plunk_events.models.WorkflowExecution`. Raises ``Conflict`` (409)
    while the workflow is disabled or when its re-entry rules keep the contact out, and
    ``NotFound`` for a contact of another project."""
    return _service.start_execution(workflow.project, workflow.pk, contact.pk, context=context)


def cancel(execution: WorkflowExecution) -> WorkflowExecution:
    """Cancel a RUNNING or WAITING execution (``DELETE /workflows/<id>/executions/<eid>``);
    returns it as it is now. A cancelled one is returned as is; one that is over otherwise
    raises ``Conflict`` (409)."""
    return _service.cancel_execution(execution.project, execution.workflow_id, execution.pk)


def cancel_all(workflow: Workflow) -> int:
    """Cancel every RUNNING and WAITING execution of ``workflow``; returns how many."""
    return _service.cancel_all(workflow.project, workflow.pk)


__all__ = ["cancel", "cancel_all", "start"]
