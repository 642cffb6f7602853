"""Issue 13: the segment condition builder in a real browser at 1280 px. Every operator of the
grammar round-trips (JSON → builder → JSON, equal), a condition built with the form saves as
the API would store it, and the live preview counts the contacts through the segment engine."""

from __future__ import annotations

import json

import pytest

from plunk_events.models import Segment
from tests.browser.test_admin_browser import login, site  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def one(flt: dict) -> dict:
    return {"logic": "AND", "groups": [{"filters": [flt]}]}


def samples(segment_id: str) -> dict[str, dict]:
    """One condition per operator, with the value, unit and window each one takes."""
    out = {}
    for op in ("equals", "notEquals", "contains", "notContains"):
        out[op] = one({"field": "data.plan", "operator": op, "value": "pro"})
    for op in ("greaterThan", "lessThan", "greaterThanOrEqual", "lessThanOrEqual"):
        out[op] = one({"field": "data.seats", "operator": op, "value": 3})
    for op in ("exists", "notExists"):
        out[op] = one({"field": "data.plan", "operator": op})
    for op in ("within", "olderThan"):
        out[op] = one({"field": "createdAt", "operator": op, "value": 30, "unit": "days"})
    for op in ("triggered", "notTriggered"):
        out[op] = one({"field": "event.signup", "operator": op})
    for op in ("triggeredWithin", "triggeredOlderThan", "notTriggeredWithin"):
        out[op] = one({"field": "event.signup", "operator": op, "value": 7, "unit": "hours"})
    out["triggeredAtLeast"] = one(
        {
            "field": "event.purchase",
            "operator": "triggeredAtLeast",
            "value": 2,
            "window": {"amount": 30, "unit": "days"},
        }
    )
    out["triggeredAtMost"] = one(
        {"field": "event.purchase", "operator": "triggeredAtMost", "value": 5}
    )
    for op in ("memberOfSegment", "notMemberOfSegment"):
        out[op] = one({"field": f"segment.{segment_id}", "operator": op})
    out["email activity"] = one(
        {"field": "email.opened", "operator": "triggeredWithin", "value": 2, "unit": "days"}
    )
    out["subscribed boolean"] = one({"field": "subscribed", "operator": "equals", "value": True})
    out["nested"] = {
        "logic": "OR",
        "groups": [
            {
                "filters": [{"field": "event.signup", "operator": "triggered"}],
                "conditions": {
                    "logic": "AND",
                    "groups": [
                        {"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}
                    ],
                },
            },
            {"filters": [{"field": "email", "operator": "contains", "value": "@example.com"}]},
        ],
    }
    return out


def open_add_page(page, site):  # noqa: F811
    page.goto(f"{site['url']}/admin/plunk_events/segment/add/")
    page.wait_for_selector("#plunk-builder")


def test_every_operator_round_trips(page, site, screenshot):  # noqa: F811
    login(page, site)
    open_add_page(page, site)
    screenshot("31-segment-builder-empty")
    for label, condition in samples(str(site["segment"].pk)).items():
        # Paste the JSON in the advanced editor, switch to the builder, let it write back.
        page.click("#plunk-builder-toggle")  # to JSON
        page.fill("#id_condition", json.dumps(condition))
        page.click("#plunk-builder-toggle")  # back to the builder, which reads it
        page.evaluate("window.plunkConditionBuilder.changed()")
        written = json.loads(page.input_value("#id_condition"))
        assert written == condition, label
        operators = page.locator("#plunk-builder select[aria-label=Operator]")
        wanted = [f["operator"] for g in condition["groups"] for f in g["filters"]]
        assert operators.first.input_value() == wanted[0], label
    screenshot("32-segment-builder-nested")


def test_build_save_and_preview(page, site, screenshot):  # noqa: F811
    login(page, site)
    open_add_page(page, site)
    page.select_option("#id_project", str(site["project"].pk))
    page.fill("#id_name", "Recent signups")
    row = page.locator("#plunk-builder .plunk-filter").first
    row.locator("select[aria-label=Field]").select_option("event.")
    page.locator("#plunk-builder .plunk-field-name").first.fill("signup")
    row = page.locator("#plunk-builder .plunk-filter").first
    row.locator("select[aria-label=Operator]").select_option("triggeredWithin")
    row = page.locator("#plunk-builder .plunk-filter").first
    row.locator(".plunk-value").fill("30")
    row.locator("select[aria-label=Unit]").select_option("days")
    page.wait_for_function(
        "document.getElementById('plunk-builder-preview').textContent.includes('Would match')"
    )
    preview = page.locator("#plunk-builder-preview").inner_text()
    screenshot("33-segment-builder-preview")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    saved = Segment.objects.get(name="Recent signups")
    assert saved.condition == one(
        {"field": "event.signup", "operator": "triggeredWithin", "value": 30, "unit": "days"}
    )
    assert f"Would match {saved.member_count:,} contact" in preview
