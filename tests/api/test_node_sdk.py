"""Plunk's official Node SDK (``@plunk/node``, pinned in ``node_sdk/package-lock.json``) against
the live test server: ``plunk.emails.send({to, subject, body})`` unchanged, then ``GET /events``
lists the ``email.sent`` of the message, and the SDK's errors carry our messages.

Needs ``node`` and ``npm`` (and the npm registry, or npm's cache, for ``npm ci``): skipped
without them locally, a failure when ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plunk_events.email_models import Email
from plunk_events.services.projects import create_project

SDK_DIR = Path(__file__).resolve().parent / "node_sdk"
TO = "sdk@example.com"


@pytest.fixture(scope="module")
def node_sdk(tmp_path_factory) -> Path:
    """A folder with the SDK installed by ``npm ci`` from the lockfile, and ``send.js``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are missing (apt-get install nodejs npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("node_sdk")
    for name in ("package.json", "package-lock.json", "send.js"):
        shutil.copy(SDK_DIR / name, folder / name)
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    return folder


@pytest.mark.django_db(transaction=True)
def test_the_official_node_sdk_sends_an_email(node_sdk, live_server, mailoutbox):
    project = create_project("SDK")
    env = {
        **os.environ,
        "PLUNK_URL": live_server.url,
        "SECRET_KEY": project.secret_key,
        "PUBLIC_KEY": project.public_key,
        "TO": TO,
    }
    run = subprocess.run(
        [shutil.which("node"), "send.js"],
        cwd=node_sdk,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)

    email = Email.objects.get(project=project)
    sent = result["sent"]
    assert sent["success"] is True
    assert sent["data"]["emails"] == [
        {"contact": {"id": str(email.contact_id), "email": TO}, "email": str(email.id)}
    ]
    assert email.status == Email.Status.SENT
    assert [(m.to, m.subject) for m in mailoutbox] == [([TO], "Hello from the SDK")]

    [event] = result["events"]["events"]
    assert (event["name"], event["contactId"], event["emailId"]) == (
        "email.sent",
        str(email.contact_id),
        str(email.id),
    )
    assert event["contact"] == {"email": TO}

    # The SDK throws ``new Error(body.message)``, and a TokenError on a 401.
    assert result["invalid"] == {
        "name": "Error",
        "type": "Error",
        "message": "Request validation failed",
    }
    assert result["publicKey"]["type"] == "TokenError"
    assert "secret key" in result["publicKey"]["message"]
    assert Email.objects.filter(project=project).count() == 1
