"""Routes of the API, in Plunk's order (the first matching route wins).

Event names may contain dots, slashes, newlines and words like ``names``: each ``events/...`` route maps GET
to its query and DELETE to a delete of the whole remainder of the path, so
``DELETE /events/names`` deletes the event called "names". Those DELETEs are in the ``Allow``
header and in the OpenAPI schema of each path, described as the delete by name they are.
"""

from __future__ import annotations

from django.urls import re_path

from .resources import ContactViewSet, SegmentViewSet, WorkflowViewSet
from .segment_members import SegmentMembersViewSet
from .send import SendView
from .templates import TemplateViewSet
from .views import EventViewSet, TrackBatchView, TrackView, UnknownRouteView
from .workflow_executions import WorkflowExecutionViewSet
from .workflow_graph import WorkflowGraphViewSet

events_names = EventViewSet.as_view({"get": "names", "delete": "destroy_names"})
events_stats = EventViewSet.as_view({"get": "stats", "delete": "destroy_stats"})
events_contact = EventViewSet.as_view({"get": "contact_events", "delete": "destroy_contact_named"})
events_usage = EventViewSet.as_view({"get": "usage", "delete": "destroy_usage_named"})
events_named = EventViewSet.as_view({"delete": "destroy"})
events_list = EventViewSet.as_view({"get": "list_events"})
# Page objects, not arrays: actions named ``list`` would be documented as arrays by the schema.
contacts_list = ContactViewSet.as_view({"get": "list_contacts", "post": "create"})
contacts_detail = ContactViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)
segments_list = SegmentViewSet.as_view({"get": "list", "post": "create"})
segments_detail = SegmentViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)
segment_contacts = SegmentMembersViewSet.as_view({"get": "contacts"})
segment_members = SegmentMembersViewSet.as_view({"post": "add", "delete": "remove"})
segment_compute = SegmentMembersViewSet.as_view({"post": "compute"})
segment_refresh = SegmentMembersViewSet.as_view({"post": "refresh"})
templates_list = TemplateViewSet.as_view({"get": "list_templates", "post": "create"})
templates_detail = TemplateViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)
workflows_list = WorkflowViewSet.as_view({"get": "list_workflows", "post": "create"})
workflows_detail = WorkflowViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)
workflow_duplicate = WorkflowGraphViewSet.as_view({"post": "duplicate"})
workflow_steps = WorkflowGraphViewSet.as_view({"post": "add_step"})
workflow_step = WorkflowGraphViewSet.as_view({"patch": "update_step", "delete": "delete_step"})
workflow_transitions = WorkflowGraphViewSet.as_view({"post": "create_transition"})
workflow_transition = WorkflowGraphViewSet.as_view({"delete": "delete_transition"})
workflow_insert_step = WorkflowGraphViewSet.as_view({"post": "insert_step"})
workflow_executions = WorkflowExecutionViewSet.as_view({"get": "list_executions", "post": "start"})
workflow_cancel_all = WorkflowExecutionViewSet.as_view({"post": "cancel_all"})
workflow_execution = WorkflowExecutionViewSet.as_view({"get": "retrieve", "delete": "cancel"})

urlpatterns = [
    re_path(r"^v1/track$", TrackView.as_view(), name="track"),
    re_path(r"^v1/track/batch$", TrackBatchView.as_view(), name="track-batch"),
    re_path(r"^v1/send$", SendView.as_view(), name="send"),
    re_path(r"^events$", events_list, name="events"),
    # Literal parts stay outside named groups so the OpenAPI schema gets one path per route;
    # each ``destroy_*`` alias rebuilds the event name from what the route captured.
    re_path(r"^events/names$", events_names, name="event-names"),
    re_path(r"^events/stats$", events_stats, name="event-stats"),
    re_path(r"^events/contact/(?P<contactId>[^/]+)$", events_contact, name="contact-events"),
    re_path(r"^events/(?P<eventName>[\s\S]+)/usage$", events_usage, name="event-usage"),
    re_path(r"^events/(?P<eventName>[\s\S]+)$", events_named, name="event-detail"),
    re_path(r"^contacts$", contacts_list, name="contacts"),
    re_path(r"^contacts/(?P<pk>[^/]+)$", contacts_detail, name="contact-detail"),
    re_path(r"^segments$", segments_list, name="segments"),
    re_path(r"^segments/(?P<pk>[^/]+)$", segments_detail, name="segment-detail"),
    re_path(r"^segments/(?P<pk>[^/]+)/contacts$", segment_contacts, name="segment-contacts"),
    re_path(r"^segments/(?P<pk>[^/]+)/members$", segment_members, name="segment-members"),
    re_path(r"^segments/(?P<pk>[^/]+)/compute$", segment_compute, name="segment-compute"),
    re_path(r"^segments/(?P<pk>[^/]+)/refresh$", segment_refresh, name="segment-refresh"),
    re_path(r"^templates$", templates_list, name="templates"),
    re_path(r"^templates/(?P<pk>[^/]+)$", templates_detail, name="template-detail"),
    re_path(r"^workflows$", workflows_list, name="workflows"),
    re_path(r"^workflows/(?P<pk>[^/]+)$", workflows_detail, name="workflow-detail"),
    re_path(r"^workflows/(?P<pk>[^/]+)/duplicate$", workflow_duplicate, name="workflow-duplicate"),
    re_path(r"^workflows/(?P<pk>[^/]+)/steps$", workflow_steps, name="workflow-steps"),
    re_path(
        r"^workflows/(?P<pk>[^/]+)/steps/(?P<stepId>[^/]+)$", workflow_step, name="workflow-step"
    ),
    re_path(
        r"^workflows/(?P<pk>[^/]+)/transitions$", workflow_transitions, name="workflow-transitions"
    ),
    re_path(
        r"^workflows/(?P<pk>[^/]+)/transitions/(?P<transitionId>[^/]+)$",
        workflow_transition,
        name="workflow-transition",
    ),
    re_path(
        r"^workflows/(?P<pk>[^/]+)/transitions/(?P<transitionId>[^/]+)/insert-step$",
        workflow_insert_step,
        name="workflow-insert-step",
    ),
    re_path(
        r"^workflows/(?P<pk>[^/]+)/executions$", workflow_executions, name="workflow-executions"
    ),
    # Before the execution route, which would read "cancel-all" as an execution id.
    re_path(
        r"^workflows/(?P<pk>[^/]+)/executions/cancel-all$",
        workflow_cancel_all,
        name="workflow-executions-cancel-all",
    ),
    re_path(
        r"^workflows/(?P<pk>[^/]+)/executions/(?P<executionId>[^/]+)$",
        workflow_execution,
        name="workflow-execution",
    ),
]

#: Last: anything else under the app's prefixes is a 404 in the envelope, not Django's HTML page.
fallback_urlpatterns = [
    re_path(
        r"^(?:v1|events|contacts|segments|templates|workflows)(?:/[\s\S]*)?$",
        UnknownRouteView.as_view(),
        name="unknown-route",
    ),
]
