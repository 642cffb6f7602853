"""Stacked bar charts of event volume, drawn server-side as inline SVG.

No JavaScript and no external assets: the SVG inherits the admin's text colour (light and dark
themes), every bar segment carries a ``<title>`` tooltip, the axes are labelled with dates and
counts, and the template renders the same numbers as a table for screen readers and copying.
Long windows are grouped by week or month so bars stay readable.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape

from django.utils.safestring import SafeString, mark_safe

#: Okabe-Ito colours (distinguishable with colour-vision deficiencies); grey for "other names".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
OTHER_COLOR = "#8c8c8c"
OTHER_LABEL = "Other names"
#: Key of the pre-summed other names in ``build_chart``'s input (``rollups.daily_counts(others=)``).
OTHER_KEY = "\u2063other names"  # an invisible separator: no event name starts with it

WIDTH, HEIGHT = 1000, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 16, 58
MAX_X_LABELS = 12


def name_color(name: str, taken: set[str] = frozenset()) -> str:
    """The palette colour of ``name``, from a hash of the name, so that ``email.open`` keeps its
    colour whatever the window; a colour already ``taken`` by a bigger name moves to the next."""
    first = zlib.crc32(name.encode()) % len(PALETTE)
    for step in range(len(PALETTE)):
        color = PALETTE[(first + step) % len(PALETTE)]
        if color not in taken:
            return color
    return PALETTE[first]


@dataclass
class Series:
    name: str
    color: str
    total: int = 0
    is_other: bool = False


@dataclass
class Bucket:
    start: date
    end: date  # inclusive
    values: list[int] = field(default_factory=list)
    #: True for the bucket holding today: its day is not over, its count still grows.
    partial: bool = False

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass
class Chart:
    unit: str  # "day", "week" or "month"
    series: list[Series]
    buckets: list[Bucket]
    svg: SafeString

    @property
    def total(self) -> int:
        return sum(b.total for b in self.buckets)

    @property
    def rows(self) -> list[tuple[str, list[int], int]]:
        """Table fallback: (period label, values per series, total), numbers formatted."""
        return [
            (
                period_label(b, self.unit) + (" (so far)" if b.partial else ""),
                [f"{v:,}" for v in b.values],
                f"{b.total:,}",
            )
            for b in self.buckets
        ]

    @property
    def rows_html(self) -> SafeString:
        """The table fallback's ``<tr>`` rows (a template loop over 90 rows of 7 cells costs
        more than the chart's query)."""
        many = len(self.series) > 1
        out = []
        for label, values, total in self.rows:
            cells = "".join(f'<td class="num">{v}</td>' for v in values)
            if many:
                cells += f'<td class="num">{total}</td>'
            out.append(f'<tr><th scope="row">{escape(label)}</th>{cells}</tr>')
        return mark_safe("".join(out))  # noqa: S308 (labels escaped, numbers formatted here)


def bucket_unit(first: date, last: date) -> str:
    span = (last - first).days + 1
    if span <= 92:
        return "day"
    if span <= 731:
        return "week"
    return "month"


def bucket_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next(start: date, unit: str) -> date:
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def period_label(bucket: Bucket, unit: str) -> str:
    if unit == "day":
        return bucket.start.isoformat()
    if unit == "week":
        return f"Week of {bucket.start.isoformat()}"
    return bucket.start.strftime("%B %Y")


def _tick_label(day: date, unit: str) -> str:
    if unit == "month":
        return day.strftime("%b %Y")
    return f"{day.day} {day.strftime('%b')}"


def nice_ticks(maximum: int, count: int = 5) -> list[int]:
    """Round y-axis ticks from 0 to at least ``maximum`` (steps of 1, 2 or 5 × 10^k)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    top = math.ceil(maximum / step) * step
    return list(range(0, top + 1, step))


def build_chart(
    daily: dict[tuple[date, str], int],
    first: date,
    last: date,
    *,
    top: int = len(PALETTE),
    title: str = "Events",
    today: date | None = None,
) -> Chart:
    """Group ``{(day, name): count}`` into buckets from ``first`` to ``last`` and draw them.

    The ``top`` names with the most events get their own colour; the rest are stacked as one
    "Other names" series. Each name's colour comes from a hash of the name (:func:`name_color`).
    The bucket holding ``today`` is marked partial.
    """
    if last < first:
        first, last = last, first
    unit = bucket_unit(first, last)
    totals: dict[str, int] = defaultdict(int)
    for (_, name), n in daily.items():
        totals[name] += n
    ranked = sorted(
        ((n, c) for n, c in totals.items() if n != OTHER_KEY), key=lambda kv: (-kv[1], kv[0])
    )
    named = [name for name, n in ranked[:top] if n]
    others = {name for name, _ in ranked[top:]} | ({OTHER_KEY} & set(totals))
    series, taken = [], set()
    for name in named:
        color = name_color(name, taken)
        taken.add(color)
        series.append(Series(name, color, totals[name]))
    if others:
        series.append(
            Series(OTHER_LABEL, OTHER_COLOR, sum(totals[n] for n in others), is_other=True)
        )
    index = {name: i for i, name in enumerate(named)}
    buckets: list[Bucket] = []
    position: dict[date, int] = {}
    start = bucket_start(first, unit)
    while start <= last:
        nxt = _next(start, unit)
        position[start] = len(buckets)
        end = nxt - timedelta(days=1)
        partial = today is not None and start <= today <= end
        buckets.append(Bucket(start, end, [0] * len(series), partial))
        start = nxt
    for (day, name), n in daily.items():
        if not first <= day <= last:
            continue
        slot = index.get(name, len(series) - 1)
        buckets[position[bucket_start(day, unit)]].values[slot] += n
    chart = Chart(unit, series, buckets, mark_safe(""))
    chart.svg = _svg(chart, title)
    return chart


def _svg(chart: Chart, title: str) -> SafeString:
    buckets, series, unit = chart.buckets, chart.series, chart.unit
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    peak = max((b.total for b in buckets), default=0)
    ticks = nice_ticks(peak)
    y_max = ticks[-1] or 1

    def y(value: float) -> float:
        return MARGIN_TOP + plot_h - value / y_max * plot_h

    n = max(len(buckets), 1)
    slot = plot_w / n
    bar = slot * 0.8 if slot >= 4 else slot
    first_day = buckets[0].start if buckets else None
    last_day = buckets[-1].end if buckets else None
    per = {"day": "day", "week": "week", "month": "month"}[unit]
    desc = (
        f"Events per {per} from {first_day} to {last_day}: {chart.total:,} in total, "
        f"at most {peak:,} in one {per}."
    )
    parts = [
        f'<svg class="plunk-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>",
        '<g class="grid" font-size="12" fill="currentColor">',
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="currentColor" stroke-opacity="{0.45 if tick == 0 else 0.12}"/>'
            f'<text x="{MARGIN_LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    parts.append(
        f'<text transform="translate(14 {MARGIN_TOP + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">Events per {per}</text></g>'
    )
    parts.append('<g class="bars">')
    for i, bucket in enumerate(buckets):
        x = MARGIN_LEFT + i * slot + (slot - bar) / 2
        base = 0
        label = period_label(bucket, unit) + (" (so far)" if bucket.partial else "")
        opacity = ' fill-opacity="0.45"' if bucket.partial else ""
        for value, s in zip(bucket.values, series, strict=True):
            if not value:
                continue
            top_y, bottom_y = y(base + value), y(base)
            base += value
            parts.append(
                f'<rect x="{x:.2f}" y="{top_y:.2f}" width="{bar:.2f}" '
                f'height="{max(bottom_y - top_y, 0.5):.2f}" fill="{s.color}"{opacity}>'
                f"<title>{escape(label)} · {escape(s.name)}: {value:,}"
                f"{f' of {bucket.total:,}' if len(series) > 1 else ''}</title></rect>"
            )
    parts.append("</g>")
    step = max(1, math.ceil(n / MAX_X_LABELS))
    parts.append('<g class="x-axis" font-size="12" fill="currentColor">')
    for i in range(0, len(buckets), step):
        cx = MARGIN_LEFT + i * slot + slot / 2
        parts.append(
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{MARGIN_TOP + plot_h}" '
            f'y2="{MARGIN_TOP + plot_h + 4}" stroke="currentColor" stroke-opacity="0.45"/>'
            f'<text x="{cx:.1f}" y="{MARGIN_TOP + plot_h + 18}" text-anchor="middle">'
            f"{escape(_tick_label(buckets[i].start, unit))}</text>"
        )
    span = f"{first_day:%d %b %Y} – {last_day:%d %b %Y}" if buckets else ""
    if buckets and buckets[-1].partial:
        span += ", the last bar so far (today is not over)"
    caption = {"day": "Day", "week": "Week starting", "month": "Month"}[unit]
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{caption} (UTC), {escape(span)}</text></g></svg>"
    )
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped)
