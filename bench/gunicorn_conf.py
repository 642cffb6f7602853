"""gunicorn hooks for the benchmark: count responses per (method, path, status class) in each
worker and write them out when the worker exits, so the bench can check rows stored against
the 2xx responses the server actually sent (wrk cannot see requests cut off at its deadline)."""

from __future__ import annotations

import json
import os
from collections import Counter

_counts: Counter = Counter()


def post_request(worker, req, environ, resp):
    status = int(str(resp.status).split()[0])
    _counts[f"{req.method} {req.path} {status // 100}xx"] += 1


def worker_exit(server, worker):
    folder = os.environ.get("BENCH_COUNTS_DIR")
    if folder:
        with open(os.path.join(folder, f"worker-{worker.pid}.json"), "w") as f:
            json.dump(dict(_counts), f)
