"""``IDEMPOTENCY_REPLAY`` through real HTTP server processes, on SQLite (a file, as another
process cannot open the in-memory test database) and on PostgreSQL: 50 concurrent repeats of one
request write it once and all get the same bytes, and a repeat is answered by a second server
process after the first was killed, from the response stored in the database (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from tests.concurrency import run_at_once

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]

#: A threaded WSGI server of the test site with replay on; prints its port once listening.
SERVER = """
import django
django.setup()
from django.test import override_settings
override_settings(PLUNK_EVENTS={"IDEMPOTENCY_REPLAY": True}).enable()
from django.core.servers.basehttp import WSGIServer, run
from django.core.wsgi import get_wsgi_application

class Server(WSGIServer):
    request_queue_size = 128  # 50 clients connect at once

run("127.0.0.1", 0, get_wsgi_application(), threading=True, server_cls=Server,
    on_bind=lambda port: print(port, flush=True))
"""

NEW_PROJECT = """
import django
django.setup()
from plunk_events.services.projects import create_project
project = create_project("Replay")
print(project.public_key, project.secret_key)
"""

BODY = {"email": "buyer@example.com", "event": "paid", "data": {"order": 42}}


def database_url(tmp_path) -> str:
    """The test database for the server processes; SQLite in memory: a migrated file instead."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
        host = f"{settings['HOST']}:{settings['PORT'] or 5432}"
        return f"postgres://{auth}@{host}/{settings['NAME']}"
    if not connection.is_in_memory_db():
        return f"sqlite:///{settings['NAME']}"
    url = f"sqlite:///{tmp_path / 'replay.sqlite3'}"
    django_admin(url, ["-m", "django", "migrate", "--noinput", "-v", "0"])
    return url


def django_admin(url: str, args: list[str]) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Server:
    """One server process on ``url``'s database."""

    def __init__(self, url: str, log: Path) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}
        self.log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        port = self.process.stdout.readline().strip()
        assert port.isdigit(), log.read_text()
        self.base = f"http://127.0.0.1:{port}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.log.close()


@pytest.fixture
def site(tmp_path):
    """``(url, public_key, secret_key)`` of a project in the servers' database."""
    url = database_url(tmp_path)
    public_key, secret_key = django_admin(url, ["-c", NEW_PROJECT]).split()
    return url, public_key, secret_key


@pytest.fixture
def start(tmp_path):
    servers: list[Server] = []

    def start_server(url: str) -> Server:
        servers.append(Server(url, tmp_path / "server.log"))
        return servers[-1]

    yield start_server
    for server in servers:
        if server.process.poll() is None:
            server.kill()


def call(server: Server, key: str, method: str, path: str, body=None, headers=None):
    """``(status, headers, raw body)`` of one request."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    request = urllib.request.Request(
        server.base + path,
        data=data.encode() if isinstance(data, str) else data,
        method=method,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def stored_events(server: Server, secret_key: str) -> list[dict]:
    status, _, body = call(server, secret_key, "GET", "/events?limit=1000")
    assert status == 200, body
    return json.loads(body)["events"]


def test_50_concurrent_repeats_through_http_write_once(site, start):
    url, public_key, secret_key = site
    server = start(url)
    key = {"Idempotency-Key": "charge-7"}
    answers = run_at_once(lambda: call(server, public_key, "POST", "/v1/track", BODY, key), 50)
    assert [status for status, _, _ in answers] == [200] * 50
    assert len({body for _, _, body in answers}) == 1
    replayed = sorted(headers["Idempotent-Replayed"] for _, headers, _ in answers)
    assert replayed == ["false"] + ["true"] * 49
    (event,) = stored_events(server, secret_key)
    assert json.loads(answers[0][2])["data"]["event"] == event["id"]


def test_a_second_process_replays_after_the_first_was_killed(site, start):
    """The client lost the first answer (its server died right after the commit); the retry,
    answered by a new process with empty caches, gets the ids and timestamp of the original."""
    url, public_key, secret_key = site
    key = {"Idempotency-Key": "order-1"}
    first_server = start(url)
    status, headers, first = call(first_server, public_key, "POST", "/v1/track", BODY, key)
    assert (status, headers["Idempotent-Replayed"]) == (200, "false")
    first_server.kill()

    second_server = start(url)
    status, headers, again = call(second_server, public_key, "POST", "/v1/track", BODY, key)
    assert (status, headers["Idempotent-Replayed"]) == (200, "true")
    assert again == first
    assert headers["Content-Type"] == "application/json"

    changed = {**BODY, "data": {"order": 43}}
    status, _, body = call(second_server, public_key, "POST", "/v1/track", changed, key)
    assert status == 409
    assert json.loads(body)["error"]["details"]["reason"] == "different_request"
    (event,) = stored_events(second_server, secret_key)
    assert json.loads(first)["data"] == {
        "contact": json.loads(first)["data"]["contact"],
        "event": event["id"],
        "timestamp": event["createdAt"],
    }
