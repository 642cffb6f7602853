"""``make help`` documents every target; ``make demo`` passes PORT to plunk_demo and runserver."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args: str) -> str:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_help_lists_every_target_with_a_description():
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    targets = phony.group(1).split()
    listed = dict(
        re.match(r"^  (\S+)\s+(.+)$", line).groups()
        for line in make("help").splitlines()
        if re.match(r"^  [a-z-]+ ", line)
    )
    assert set(listed) == set(targets)
    assert all(listed.values())


def test_help_shows_variables_once_escaped():
    text = make("help", "PG_URL=postgres://x@h/db", "PORT=8123")
    assert "$$" not in text
    assert "$PG_URL" in text  # named in the descriptions of the targets that use it
    assert "PG_URL=postgres://x@h/db" in text and "PORT=8123" in text


def test_demo_uses_port_everywhere():
    # -n prints the commands; -o .venv/.installed leaves the install step out.
    commands = make("-n", "-o", ".venv/.installed", "demo", "PORT=8001")
    assert "plunk_demo --port 8001" in commands
    assert "runserver 127.0.0.1:8001" in commands
    assert "PLUNK_PUBLIC_URL=http://127.0.0.1:8001 " in commands  # the links in mail
    assert "8000" not in commands
