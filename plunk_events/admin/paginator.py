"""A changelist paginator for tables of millions of rows.

Django's admin paginator runs ``SELECT COUNT(*)`` over the filtered queryset on every page, which
reads every row of a million-event project. This one takes the count from where it is cheap:
a ``known_count`` the changelist passes (the rollup's exact per-name totals, when only the
project, event type and name filters are set), else, on PostgreSQL, the planner's estimate of the
filtered query (``EXPLAIN``, about a millisecond): when the estimate is small the exact count is
cheap and runs (under a short ``statement_timeout``), otherwise the changelist shows "about N".
SQLite sites are small: a plain count.
Deep OFFSET pages are as slow as a count, so the number of pages is capped; the filters and the
date drill-down reach older rows.
"""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from ..services.insights import within_budget


class LargeTablePaginator(Paginator):
    #: Budget of the exact COUNT on PostgreSQL, in milliseconds.
    count_timeout_ms = 200
    #: Pages reachable through the page links (OFFSET beyond this gets slow).
    max_pages = 200

    #: Estimated rows below which the exact COUNT runs (it reads them all).
    exact_below = 20_000

    #: True when ``count`` is the planner's estimate rather than an exact count.
    estimated = False

    def __init__(self, *args, known_count: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.known_count = known_count

    @cached_property
    def count(self) -> int:
        if self.known_count is not None:
            return self.known_count
        queryset = self.object_list
        if connections[queryset.db].vendor == "postgresql":
            estimate = self._estimate(queryset)
            if estimate >= self.exact_below:
                self.estimated = True
                return estimate
        exact = within_budget(lambda: queryset.count(), self.count_timeout_ms)
        if exact is not None:
            return exact
        self.estimated = True
        return self._estimate(queryset)

    @staticmethod
    def _estimate(queryset) -> int:
        """Rows the PostgreSQL planner expects from the filtered query."""
        plan = queryset.order_by().explain(format="json")
        try:
            return int(json.loads(plan)[0]["Plan"]["Plan Rows"])
        except (ValueError, KeyError, IndexError, TypeError):
            return 0

    @cached_property
    def num_pages(self) -> int:
        return min(super().num_pages, self.max_pages)

    @property
    def capped(self) -> bool:
        """True when rows exist beyond the last reachable page."""
        return self.count > self.num_pages * self.per_page
