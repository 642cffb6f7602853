"""Rendering of an email: the ``{{variable}}`` scope of a contact, and subject, HTML and text.

Stored templates are user input, so they are never Django templates: placeholders are
substituted by :func:`.workflow_values.render` (``{{key}}``, ``{{key.path}}``,
``{{key ?? default}}``; a placeholder without a value becomes nothing), and ``{% ... %}`` or a
filter such as ``{{ name|upper }}`` is text or an unknown key, never code. Substituted values
are HTML-escaped in the body, and never in the subject (a header, not HTML). A MARKDOWN body is
converted to HTML by markdown-it-py first, with its placeholders set aside so that the
conversion cannot mangle them nor the values they bring (a value is text, not Markdown).

The API (``POST /v1/send``), SEND_EMAIL steps and the admin's template preview all render here.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.utils.html import escape, strip_tags

from ..constants import RESERVED_DATA_KEYS
from ..email_models import SUBJECT_MAX_LENGTH, Template
from . import email_links, workflow_values
from .contact_data import is_value_wrapper

__all__ = [
    "LINE_SEPARATORS",
    "Rendered",
    "contact_variables",
    "plain_text",
    "render_message",
    "send_values",
]

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)
#: What breaks a line for ``str.splitlines`` and so for Python's email package, which refuses
#: a header value with an "embedded header" after any of them: not only CR and LF.
LINE_SEPARATORS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAKS = re.compile(f"[{LINE_SEPARATORS}]+")


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def send_values(data: Mapping | None) -> dict[str, Any]:
    """The template values of a send's ``data``: ``{value, persistent}`` wrappers unwrapped
    (persistent or not, the value is what renders) and reserved keys dropped, as Plunk does."""
    values: dict[str, Any] = {}
    for key, value in (data or {}).items():
        if key in RESERVED_DATA_KEYS:
            continue
        if is_value_wrapper(value):
            value = value["value"]
        values[key] = value
    return values


def contact_variables(
    contact: Any,
    data: Mapping | None = None,
    context: Any = None,
    *,
    links: bool = True,
) -> dict[str, Any]:
    """The ``{{variable}}`` scope of a message to ``contact`` (a Contact, a ContactState, or
    anything with ``id``, ``project_id``, ``email``, ``subscribed`` and ``data``).

    In Plunk's order, later keys winning: ``id``, ``email``, ``subscribed``, the contact's data,
    the send's ``data`` (:func:`send_values`), then for workflows the context's keys and
    ``event`` (the context: the trigger event's data), ``data`` (contact data and send data),
    and the ``unsubscribeUrl``/``subscribeUrl``/``manageUrl`` links (``links=False`` leaves them
    out, for a preview without a saved contact).
    """
    contact_data = contact.data if isinstance(contact.data, dict) else {}
    merged = {**contact_data, **send_values(data)}
    variables: dict[str, Any] = {
        "id": str(contact.id) if contact.id is not None else None,
        "email": contact.email,
        "subscribed": contact.subscribed,
        **merged,
    }
    if context is not None:
        ctx = context if isinstance(context, dict) else {}
        variables.update(ctx)
        variables["event"] = ctx
    variables["data"] = merged
    if links:
        variables.update(email_links.links(contact))
    return variables


def render_subject(subject: str, variables: Mapping) -> str:
    """Substituted as is (a header is not HTML), on one line, at most 998 characters."""
    text = workflow_values.render(subject, variables)
    return _LINE_BREAKS.sub(" ", text).strip()[:SUBJECT_MAX_LENGTH]


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    # CommonMark (raw HTML allowed, as in an HTML body) plus GitHub's tables and strikethrough.
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_to_html(body: str) -> str:
    """Markdown to HTML, placeholders left as they are for :func:`render_body` to fill.

    Each placeholder becomes a token of letters and digits (which Markdown leaves alone) for
    the conversion, and is put back after it.
    """
    nonce = secrets.token_hex(6)
    while nonce in body:  # pragma: no cover (a 48-bit nonce already in the body)
        nonce = secrets.token_hex(6)
    placeholders: list[str] = []

    def set_aside(match: re.Match) -> str:
        placeholders.append(match.group(0))
        return f"plunk{nonce}x{len(placeholders) - 1}x"

    converted = _markdown().render(_PLACEHOLDER.sub(set_aside, body))
    return re.sub(
        rf"plunk{nonce}x(\d+)x", lambda match: placeholders[int(match.group(1))], converted
    )


def render_body(body: str, body_format: str, variables: Mapping) -> str:
    """The HTML body: MARKDOWN converted first, then every substituted value HTML-escaped."""
    if body_format == Template.BodyFormat.MARKDOWN:
        body = markdown_to_html(body)
    return workflow_values.render(body, variables, escape=escape)


_INVISIBLE = re.compile(r"<(head|style|script|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK_END = re.compile(
    r"<br\s*/?>|</(?:p|div|h[1-6]|li|tr|table|blockquote|pre|ul|ol)\s*>|<(?:p|div|h[1-6])\b[^>]*>",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")
_LINK = re.compile(r"<a\b[^>]*?\bhref\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a\s*>", re.I | re.DOTALL)


def _link_text(match: re.Match) -> str:
    href, label = match.group(2), match.group(3)
    if strip_tags(label).strip() in ("", href) or href.startswith("#"):
        return label
    return f"{label} ({href})"


def plain_text(html_body: str) -> str:
    """The text alternative of an HTML body: visible text, a line per block (source line
    breaks are spaces, as in a browser), link targets kept after their label."""
    text = _WHITESPACE.sub(" ", _INVISIBLE.sub("", html_body))  # as a browser lays it out
    text = _LINK.sub(_link_text, text)
    text = _BLOCK_END.sub("\n", text)
    text = html.unescape(strip_tags(text))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def render_message(subject: str, body: str, body_format: str, variables: Mapping) -> Rendered:
    """Subject, HTML body and its text alternative of a message, with ``variables`` filled in
    (:func:`contact_variables`)."""
    html_body = render_body(body, body_format, variables)
    return Rendered(render_subject(subject, variables), html_body, plain_text(html_body))
