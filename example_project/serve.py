"""The example site's web server and task worker as one command (``make demo`` runs it)::

    python -m example_project.serve runserver 127.0.0.1:8000

runs ``manage.py runserver 127.0.0.1:8000`` and ``manage.py db_worker`` side by side. Ctrl-C
(SIGINT) or SIGTERM stops both, and so does either one exiting. Each runs in its own process
group, so the signal reaches the autoreloader's child processes too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MANAGE = Path(__file__).resolve().parent.parent / "manage.py"
STOP_SECONDS = 10


def _signal_all(processes: dict[str, subprocess.Popen], signum: int) -> None:
    for process in processes.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGINT (what Ctrl-C sends) to each process group; SIGKILL whatever still runs after
    STOP_SECONDS, or at a second Ctrl-C."""
    _signal_all(processes, signal.SIGINT)
    deadline = time.monotonic() + STOP_SECONDS
    try:
        while time.monotonic() < deadline and any(p.poll() is None for p in processes.values()):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    _signal_all(processes, signal.SIGKILL)
    for process in processes.values():
        process.wait()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    commands = {
        "web server": [sys.executable, str(MANAGE), *argv],
        # Polls every 0.2 s when idle, so segment updates follow a track within about a second.
        "task worker": [sys.executable, str(MANAGE), "db_worker", "--interval", "0.2"],
    }

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    processes: dict[str, subprocess.Popen] = {}
    code = 0
    try:
        for name, command in commands.items():
            processes[name] = subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=0)
        while True:
            ended = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
            if ended:
                name, code = next(iter(ended.items()))
                print(f"The {name} exited ({code}); stopping the rest.", file=sys.stderr)
                code = code or 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(processes)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
