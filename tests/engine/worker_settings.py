"""Settings of a worker process started by the engine tests (tests/engine/conftest.py): the
suite's settings, pointed at the test database of the running test session."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["PLUNK_WORKER_DATABASE_NAME"]
DATABASES["replica"]["NAME"] = os.environ["PLUNK_WORKER_DATABASE_NAME"]
PLUNK_EVENTS = json.loads(os.environ.get("PLUNK_WORKER_PLUNK_EVENTS", "{}"))
