"""The admin pages against the API rows they show (issue 13), inside section 1 of ``make bench``.

Absolute times move from box to box; the ratio of two pages timed in the same run, by the same
``wrk`` against the same gunicorn, moves less. Two pairs, HTTP p50 over p50:

* the event changelist (100 newest rows of the big project) ÷ ``GET /events?limit=100``;
* the statistics page (last 30 days) ÷ ``GET /events/stats`` over the last 30 days.

Target: each ratio ≤ 4×.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from run import Report

#: The API case the changelist is compared with: the same 100 newest rows.
API_CASE = (
    "list100",
    "GET /events?limit=100 (newest 100, the admin page's rows)",
    "/events?limit=100",
)

#: (admin case, API case, label) of each ratio.
PAIRS = (
    ("admin_changelist", "list100", "admin event changelist ÷ GET /events?limit=100"),
    ("admin_stats", "stats30", "admin stats page (30 days) ÷ GET /events/stats (30 days)"),
)
MAX_RATIO = 4.0


def ratios(results: dict) -> list[dict]:
    """Each pair measured in this run: the two p50 latencies and their ratio."""
    out = []
    for admin_key, api_key, label in PAIRS:
        if admin_key in results and api_key in results:
            admin_ms = results[admin_key]["http"]["p50_ms"]
            api_ms = results[api_key]["http"]["p50_ms"]
            out.append(
                {"label": label, "admin_ms": admin_ms, "api_ms": api_ms, "ratio": admin_ms / api_ms}
            )
    return out


def report(r: Report, results: dict, *, ms) -> None:
    rows = ratios(results)
    if not rows:
        return
    r.add(
        "##### Admin pages against the API",
        "",
        "HTTP p50 of each admin page over the p50 of the API request that reads the same rows, "
        "both from the table above (same run, same server).",
        "",
    )
    r.table(
        ["Pair", "Admin p50", "API p50", "Ratio", "Target ≤ 4×"],
        [
            [
                x["label"],
                ms(x["admin_ms"]),
                ms(x["api_ms"]),
                f"{x['ratio']:.1f}×",
                "yes" if x["ratio"] <= MAX_RATIO else "**no**",
            ]
            for x in rows
        ],
    )


def targets(results: dict, row) -> None:
    for x in ratios(results):
        row(
            f"{x['label']} ≤ 4×",
            f"{x['ratio']:.1f}× ({x['admin_ms']:.0f} / {x['api_ms']:.0f} ms)",
            x["ratio"] <= MAX_RATIO,
        )
