"""The admin pages against the API rows they show (issue 13), inside section 1 of ``make bench``.

Absolute times move from box to box; the ratio of two pages timed in the same minute, by the
same ``wrk`` against the same gunicorn, moves less. Two pairs:

* the event changelist (100 newest rows of the big project) ÷ ``GET /events?limit=100``;
* the statistics page (last 30 days) ÷ ``GET /events/stats`` over the last 30 days.

Server time is one request at a time (``wrk -c1``): the API request, then the admin page,
alternating, three rounds of :data:`PAIR_SECONDS` each, the median of the three ratios of p50
latencies (a page timed a minute after its API twin on a shared box says more about the box).
The section 1 table's ``-c4`` figures are reported beside them. Target: each ratio ≤ 4×.
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
PAIR_SECONDS = 3
ROUNDS = 3


def measure_pairs(bench, server, wrk) -> dict:
    """The alternating ``wrk -c1`` rounds of each pair whose two requests section 1 timed."""
    import statistics

    results = bench.report.data.get("queries", {})
    out = {}
    for admin_key, api_key, label in PAIRS:
        if admin_key not in results or api_key not in results:
            continue
        headers = {
            admin_key: (f"Cookie: {bench.session_cookie}",),
            api_key: (f"Authorization: {bench.sk}",),
        }
        rounds = []
        for _ in range(ROUNDS):
            p50 = {}
            for key in (api_key, admin_key):
                w = wrk(
                    server.base + results[key]["path"],
                    connections=1,
                    seconds=PAIR_SECONDS,
                    headers=headers[key],
                )
                p50[key] = w["p50_ms"]
            rounds.append({"admin_ms": p50[admin_key], "api_ms": p50[api_key]})
        ratios = [r["admin_ms"] / r["api_ms"] for r in rounds]
        middle = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
        out[admin_key] = {
            "label": label,
            "ratio": statistics.median(ratios),
            "runs": ratios,
            **rounds[middle],
        }
    bench.report.data["admin_pairs"] = out
    return out


def ratios(results: dict) -> list[dict]:
    """Each pair in section 1's ``-c4`` table: the two p50 latencies and their ratio."""
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
    pairs = r.data.get("admin_pairs", {})
    loaded = {x["label"]: x for x in ratios(results)}
    if not pairs and not loaded:
        return
    r.add(
        "##### Admin pages against the API",
        "",
        "Server time: one request at a time (`wrk -t1 -c1`), the API request then the admin "
        f"page, alternating, {ROUNDS} rounds of {PAIR_SECONDS} s; the median of the ratios of "
        "p50 latencies (its round's p50s shown). Under load: the p50s of the table above "
        "(`-c4`, 4 workers), measured a minute apart.",
        "",
    )
    rows = []
    for x in pairs.values():
        runs = ", ".join(f"{v:.1f}" for v in x["runs"])
        under = loaded.get(x["label"])
        rows.append(
            [
                x["label"],
                ms(x["admin_ms"]),
                ms(x["api_ms"]),
                f"{x['ratio']:.1f}× ({runs})",
                f"{under['ratio']:.1f}×" if under else "–",
                "yes" if x["ratio"] <= MAX_RATIO else "**no**",
            ]
        )
    r.table(
        [
            "Pair",
            "Admin p50 (c1)",
            "API p50 (c1)",
            "Ratio (c1, median of runs)",
            "Ratio (c4)",
            "≤ 4×",
        ],
        rows,
    )


def targets(data: dict, row) -> None:
    for x in data.get("admin_pairs", {}).values():
        row(
            f"{x['label']} ≤ 4× (server time)",
            f"{x['ratio']:.1f}× ({x['admin_ms']:.0f} / {x['api_ms']:.0f} ms)",
            x["ratio"] <= MAX_RATIO,
        )
