"""The server-side SVG charts: buckets, stacking, labels, escaping."""

from __future__ import annotations

from datetime import date, timedelta

from plunk_events.admin.charts import OTHER_LABEL, bucket_unit, build_chart, nice_ticks


def test_bucket_unit_follows_the_span():
    start = date(2025, 1, 1)
    assert bucket_unit(start, start + timedelta(days=91)) == "day"
    assert bucket_unit(start, start + timedelta(days=92)) == "week"
    assert bucket_unit(start, start + timedelta(days=730)) == "week"
    assert bucket_unit(start, start + timedelta(days=731)) == "month"


def test_nice_ticks():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(17) == [0, 5, 10, 15, 20]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]


def test_daily_chart_stacks_the_top_names_and_groups_the_rest():
    first = date(2025, 3, 1)
    daily = {}
    for d in range(10):
        day = first + timedelta(days=d)
        for i, name in enumerate(["a", "b", "c", "d", "e", "f", "g", "h"]):
            daily[(day, name)] = 8 - i
    chart = build_chart(daily, first, first + timedelta(days=9), top=3)
    assert chart.unit == "day" and len(chart.buckets) == 10
    assert [s.name for s in chart.series] == ["a", "b", "c", OTHER_LABEL]
    assert chart.series[-1].total == sum(range(1, 6)) * 10
    assert chart.buckets[0].values == [8, 7, 6, 15]
    assert chart.total == sum(daily.values())
    svg = str(chart.svg)
    assert svg.count("<rect") == 40
    assert "<title>2025-03-01 · a: 8 of 36</title>" in svg
    assert ">1 Mar</text>" in svg and "Day (UTC), 01 Mar 2025 – 10 Mar 2025" in svg
    assert chart.rows[0] == ("2025-03-01", ["8", "7", "6", "15"], "36")


def test_empty_days_are_kept_and_names_escaped():
    first = date(2025, 1, 30)
    daily = {(date(2025, 2, 2), "<script>x</script>"): 3}
    chart = build_chart(daily, first, date(2025, 2, 3))
    assert [b.total for b in chart.buckets] == [0, 0, 0, 3, 0]
    svg = str(chart.svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_long_ranges_are_grouped_by_week_and_month():
    first = date(2024, 1, 1)  # a Monday
    daily = {(first + timedelta(days=d), "x"): 1 for d in range(0, 200)}
    weekly = build_chart(daily, first, first + timedelta(days=199))
    assert weekly.unit == "week"
    assert weekly.buckets[0].start == first and weekly.buckets[0].total == 7
    assert weekly.total == 200
    assert weekly.rows[0][0] == "Week of 2024-01-01"
    monthly = build_chart(daily, first, date(2026, 6, 1))
    assert monthly.unit == "month"
    assert monthly.buckets[0].total == 31 and monthly.buckets[1].total == 29
    assert monthly.rows[1][0] == "February 2024"


def test_colours_follow_the_name_not_the_rank():
    first = date(2025, 3, 1)
    one = build_chart({(first, "email.open"): 10, (first, "x"): 50}, first, first)
    two = build_chart({(first, "email.open"): 90, (first, "y"): 5}, first, first)
    colour = {s.name: s.color for s in one.series}["email.open"]
    assert {s.name: s.color for s in two.series}["email.open"] == colour
    assert len({s.color for s in one.series}) == len(one.series)


def test_the_bucket_of_today_is_partial():
    first = date(2025, 3, 1)
    daily = {(first + timedelta(days=d), "a"): 1000 + d for d in range(3)}
    chart = build_chart(daily, first, first + timedelta(days=2), today=first + timedelta(days=2))
    assert [b.partial for b in chart.buckets] == [False, False, True]
    assert chart.rows[2] == ("2025-03-03 (so far)", ["1,002"], "1,002")
    assert 'fill-opacity="0.45"' in str(chart.svg) and "so far" in str(chart.svg)
