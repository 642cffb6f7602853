"""Rendering of emails (plunk_events.services.email_render): the variables of a contact, the
substitution rules, HTML escaping, Markdown bodies and the text alternative."""

from __future__ import annotations

import re

import pytest

from plunk_events.models import Contact
from plunk_events.services import email_links
from plunk_events.services.email_render import contact_variables, plain_text, render_message

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'


@pytest.fixture
def ann(project):
    return Contact.objects.create(
        project=project, email="ann@x.io", data={"firstName": "Ann", "plan": "pro"}
    )


def html(body, variables, body_format="HTML"):
    return render_message("s", body, body_format, variables).html


def test_the_variables_of_a_contact_in_plunks_order(settings, ann):
    settings.PLUNK_EVENTS = {"PUBLIC_URL": "https://mail.example.com"}
    variables = contact_variables(
        ann,
        {
            "plan": "team",  # the send's data wins over the contact's
            "code": {"value": "123456", "persistent": False},
            "ref": {"value": "r1", "persistent": True},
            "email": "evil@x.io",  # reserved: never replaces the contact's address
            "unsubscribeUrl": "https://evil.example.com",
        },
    )
    assert variables["id"] == str(ann.pk)
    assert variables["email"] == "ann@x.io"
    assert (variables["firstName"], variables["plan"]) == ("Ann", "team")
    assert (variables["code"], variables["ref"]) == ("123456", "r1")
    assert variables["data"] == {"firstName": "Ann", "plan": "team", "code": "123456", "ref": "r1"}
    assert variables["unsubscribeUrl"] == email_links.links(ann)["unsubscribeUrl"]
    assert variables["unsubscribeUrl"].startswith("https://mail.example.com/email/unsubscribe/")
    assert {"subscribeUrl", "manageUrl"} <= set(variables)
    assert "event" not in variables  # only workflows have an event


def test_a_workflows_context_is_the_event_and_its_keys(ann):
    variables = contact_variables(ann, context={"orderId": "o-1", "plan": "enterprise"})
    assert variables["event"] == {"orderId": "o-1", "plan": "enterprise"}
    assert variables["orderId"] == "o-1"
    assert variables["plan"] == "enterprise"  # the context's keys come after contact data
    assert variables["data"]["plan"] == "pro"
    rendered = render_message("{{event.orderId}}", "{{data.plan}}/{{plan}}", "HTML", variables)
    assert (rendered.subject, rendered.html) == ("o-1", "pro/enterprise")


def test_substitution_defaults_and_leftovers():
    variables = {"name": "Ann", "n": 3, "ok": True, "tags": ["a", "b"], "empty": None}
    body = (
        "{{name}}|{{ name }}|{{n}}|{{ok}}|{{tags}}|{{missing}}|{{missing ?? friend}}"
        '|{{empty ?? "no one"}}|{{name ?? x}}'
    )
    assert (
        html(body, variables) == "Ann|Ann|3|true|[&quot;a&quot;,&quot;b&quot;]||friend|no one|Ann"
    )
    assert render_message(body, "b", "HTML", variables).subject == (
        'Ann|Ann|3|true|["a","b"]||friend|no one|Ann'
    )


def test_values_are_escaped_in_the_body_not_in_the_subject():
    variables = {"name": XSS, "url": "https://x.io/?a=1&b=2"}
    rendered = render_message(
        "Hi {{name}}", '<p>Hi {{name}}</p><a href="{{url}}">go</a>', "HTML", variables
    )
    assert rendered.subject == f"Hi {XSS}"
    assert rendered.html == (
        "<p>Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>"
        '<a href="https://x.io/?a=1&amp;b=2">go</a>'
    )
    assert "<script>" not in rendered.html
    # a default is a substituted value too
    assert html("{{missing ?? <b>}}", {}) == "&lt;b&gt;"


def test_the_subject_is_one_line_of_at_most_998_characters():
    rendered = render_message("Hi {{name}}!", "b", "HTML", {"name": "Ann\r\nBcc: x@evil.io"})
    assert rendered.subject == "Hi Ann Bcc: x@evil.io!"
    assert len(render_message("{{long}}", "b", "HTML", {"long": "x" * 2000}).subject) == 998


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_every_line_separator_of_a_value_is_a_space_in_the_subject(separator):
    """Python's email package breaks a header at these too (and refuses "embedded headers"):
    contact data with one must not make the mail fail."""
    rendered = render_message(
        "Hi {{name}}!", "b", "HTML", {"name": f"Ann{separator}Bcc: x@evil.io"}
    )
    assert rendered.subject == "Hi Ann Bcc: x@evil.io!"


def test_django_template_syntax_is_never_evaluated(settings):
    variables = {"name": "Ann"}
    body = '{% load static %}{% now "Y" %}{{ settings.SECRET_KEY }}{{ name|upper }}{# c #}'
    rendered = render_message("{% now 'Y' %}", body, "HTML", variables)
    # Tags stay literal text (escaped nowhere: they are the template's own text), and a
    # placeholder with a filter is just an unknown key: nothing, never the secret key.
    assert rendered.html == '{% load static %}{% now "Y" %}{# c #}'
    assert rendered.subject == "{% now 'Y' %}"
    assert settings.SECRET_KEY not in rendered.html


def test_markdown_bodies_become_html_with_escaped_values():
    variables = {"name": "**Ann** <b>", "url": "https://x.io/a_b_c?x=1&y=2", "code": "a_b_c"}
    body = (
        "# Hello {{name}}\n\n"
        'Use *this* [link]({{url}}) and `{{code}}` {{ missing ?? "_friend_" }}.\n\n'
        "| plan | code |\n|---|---|\n| pro | {{code}} |\n"
    )
    out = html(body, variables, "MARKDOWN")
    # The value is text: its Markdown and HTML stay literal, escaped.
    assert "<h1>Hello **Ann** &lt;b&gt;</h1>" in out
    assert '<a href="https://x.io/a_b_c?x=1&amp;y=2">link</a>' in out
    assert "<em>this</em>" in out and "<code>a_b_c</code>" in out
    assert "_friend_." in out  # a default is not Markdown either
    assert "<td>a_b_c</td>" in out  # tables
    assert "{{" not in out and not re.search(r"plunk[0-9a-f]{12}x", out)  # no token left


def test_a_markdown_body_keeps_its_own_html():
    out = html('<div align="center">{{name}}</div>\n\nText', {"name": "Ann"}, "MARKDOWN")
    assert '<div align="center">Ann</div>' in out and "<p>Text</p>" in out


def test_an_html_body_is_not_converted_as_markdown():
    assert html("# {{name}} *x*", {"name": "Ann"}) == "# Ann *x*"


def test_the_text_alternative():
    body = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<h1>Hello  Ann</h1>\n<p>Line one<br>line &amp; two</p>"
        '<p><a href="https://x.io/u">Unsubscribe</a> <a href="https://x.io">https://x.io</a></p>'
        "<script>track()</script></body></html>"
    )
    assert plain_text(body) == (
        "Hello Ann\n\nLine one\nline & two\n\nUnsubscribe (https://x.io/u) https://x.io"
    )
    assert render_message("s", "<p>{{name}}</p>", "HTML", {"name": XSS}).text == XSS
