"""``make demo``'s last step, ``python -m example_project.serve runserver 127.0.0.1:PORT``: the
web server and the task worker run together (the worker runs the periodic tick that ``migrate``
started), and Ctrl-C stops both, autoreloader children included."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.db_independent]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.2)


def ticks_done(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM django_tasks_database_dbtaskresult"
            " WHERE task_path = 'plunk_events.tasks.tick' AND status = 'SUCCESSFUL'"
        ).fetchone()[0]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_demo_serves_with_a_worker_and_ctrl_c_stops_both(tmp_path):
    db = tmp_path / "demo.db"
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}},
        "DATABASE_URL": f"sqlite:///{db}",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = free_port()

    serve = subprocess.Popen(
        [sys.executable, "-m", "example_project.serve", "runserver", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/openapi.json"))
        wait_for(lambda: ticks_done(db) >= 1)  # the worker runs the tick migrate enqueued
        below = descendants(serve.pid)
        assert len(below) >= 2  # runserver and db_worker (and their autoreloader children)

        serve.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert serve.wait(timeout=30) == 0
        wait_for(lambda: not any(alive(pid) for pid in below), timeout=15)
        assert not answers(f"http://127.0.0.1:{port}/openapi.json")
    finally:
        if serve.poll() is None:
            serve.kill()
        for pid in descendants(serve.pid):
            os.kill(pid, signal.SIGKILL)
