"""Synthetic events generated inside PostgreSQL, for the benchmark (``manage.py plunk_seed``).

Not part of the app: it writes the event table directly, which only a benchmark that needs
millions of rows in seconds may do.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connections, transaction

from plunk_events.models import Contact, Event, EventDailyCount, EventNameTotal, Project
from plunk_events.services.db import db_for_write
from plunk_events.services.references import lock_project

#: A UUIDv7 for the timestamp expression ``{ts}``: 48-bit Unix milliseconds, version 7, then the
#: random and variant bits of ``gen_random_uuid()`` (not ``random()``, so ids never repeat when
#: the same ``setseed`` is used twice, and the seeded content does not depend on them).
_SQL_UUID7 = (
    "(lpad(to_hex(floor(extract(epoch FROM {ts}) * 1000)::bigint), 12, '0')"
    " || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid"
)


def seed_events_sql(
    project: Project,
    *,
    events: int,
    contacts: int,
    names: list[str],
    weights: list[float],
    start: datetime,
    end: datetime,
    seed: float,
    system_names: list[str] | None = None,
    system_share: float = 0.0,
    contact_skew: float = 2.0,
    unsubscribed_share: float = 0.05,
    email_prefix: str = "user",
    email_domain: str = "example.com",
) -> int:
    """Generate ``events`` synthetic events in one ``INSERT … SELECT`` (PostgreSQL only).

    For benchmarks at millions of rows, where :func:`import_events` (one contact upsert per
    email, Python objects per event) is too slow. Contacts ``<prefix><k>@<domain>`` for k in
    1..``contacts`` are created if missing; event k is drawn as ``1 + floor(contacts *
    random()^contact_skew)`` (contact 1 is the busiest), names by ``weights`` (or, with
    probability ``system_share``, uniformly from ``system_names``), timestamps ascend from
    ``start`` to ``end``. ``seed`` (-1..1) goes to ``setseed``, so the same arguments give the
    same rows. Runs under the project lock; events older than the rollup watermark are added to
    the rollup in the same statement, so names and stats stay exact. Call :func:`rollup` after.
    """
    alias = db_for_write()
    connection = connections[alias]
    if connection.vendor != "postgresql":
        raise NotImplementedError("seed_events_sql needs PostgreSQL; use import_events")
    if events <= 0:
        return 0
    total = float(sum(weights))
    bounds, acc = [], 0.0
    for weight in weights:  # lower bound of each name's bucket for width_bucket()
        bounds.append(acc / total)
        acc += weight
    quote = connection.ops.quote_name
    contact_t, event_t = quote(Contact._meta.db_table), quote(Event._meta.db_table)
    daily_t, totals_t = (
        quote(EventDailyCount._meta.db_table),
        quote(EventNameTotal._meta.db_table),
    )
    params = {
        "p": project.pk,
        "n": events,
        "c": contacts,
        "start": start,
        "span": end - start,
        "seed": seed,
        "skew": contact_skew,
        "unsub": unsubscribed_share,
        "pre": email_prefix,
        "dom": "@" + email_domain,
        "names": list(names),
        "bounds": bounds,
        "sys": list(system_names or ["email.sent"]),
        "nsys": len(system_names or ["email.sent"]),
        "sys_share": system_share if system_names else 0.0,
    }
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        locked = lock_project(project)
        params["wm"] = locked.events_rolled_until
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SELECT setseed(%(seed)s)", params)
        cursor.execute(
            f"INSERT INTO {contact_t} (id, project_id, email, subscribed, data, created_at,"
            " updated_at)"
            f" SELECT {_SQL_UUID7.format(ts='%(start)s::timestamptz')}, %(p)s,"
            " %(pre)s || k || %(dom)s, random() >= %(unsub)s,"
            " jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + floor(random() * 3)::int],"
            " 'signup', k), %(start)s, %(start)s"
            " FROM generate_series(1, %(c)s) AS k"
            " ON CONFLICT (project_id, email) DO NOTHING",
            params,
        )
        cursor.execute("CREATE TEMP TABLE plunk_seed_contact (k int PRIMARY KEY, id uuid NOT NULL)")
        cursor.execute(
            "INSERT INTO plunk_seed_contact SELECT k, c.id FROM generate_series(1, %(c)s) AS k"
            f" JOIN {contact_t} c ON c.project_id = %(p)s AND c.email = %(pre)s || k || %(dom)s",
            params,
        )
        cursor.execute("ANALYZE plunk_seed_contact")
        # ``g`` calls random(), so PostgreSQL materialises it: one draw per row, in order.
        cursor.execute(
            "WITH g AS ("
            "  SELECT %(start)s::timestamptz + %(span)s::interval * ((i - 1 + random()) / %(n)s)"
            "           AS ts,"
            "         1 + floor(%(c)s * power(random(), %(skew)s))::int AS k,"
            "         random() AS r_sys, random() AS r_name, random() AS r_data,"
            "         floor(random() * 1000)::int AS v"
            "  FROM generate_series(1, %(n)s) AS i"
            "), picked AS ("
            "  SELECT g.ts, sc.id AS contact_id,"
            "    CASE WHEN g.r_sys < %(sys_share)s"
            "      THEN (%(sys)s::text[])[1 + floor(g.r_name * %(nsys)s)::int]"
            "      ELSE (%(names)s::text[])[width_bucket(g.r_name, %(bounds)s::float8[])] END"
            "      AS name,"
            "    CASE WHEN g.r_sys < %(sys_share)s OR g.r_data < 0.1 THEN NULL"
            "      ELSE jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + g.v %% 3],"
            "                              'value', g.v) END AS data"
            "  FROM g JOIN plunk_seed_contact sc ON sc.k = g.k"
            "), ins AS ("
            f"  INSERT INTO {event_t} (id, project_id, contact_id, name, data, email_id, created_at)"
            f"  SELECT {_SQL_UUID7.format(ts='ts')}, %(p)s, contact_id, name, data, NULL, ts"
            "  FROM picked ORDER BY ts"
            "  RETURNING name, created_at"
            "), daily AS ("
            f"  INSERT INTO {daily_t} AS d (project_id, day, name, count)"
            "  SELECT %(p)s, (created_at AT TIME ZONE 'UTC')::date, name, count(*) FROM ins"
            "  WHERE created_at < %(wm)s::timestamptz GROUP BY 2, 3"
            "  ON CONFLICT (project_id, day, name) DO UPDATE SET count = d.count + EXCLUDED.count"
            "  RETURNING 1"
            "), totals AS ("
            f"  INSERT INTO {totals_t} AS t (project_id, name, count, first_seen, last_seen)"
            "  SELECT %(p)s, name, count(*), min(created_at), max(created_at) FROM ins"
            "  WHERE created_at < %(wm)s::timestamptz GROUP BY name"
            "  ON CONFLICT (project_id, name) DO UPDATE SET count = t.count + EXCLUDED.count,"
            "    first_seen = LEAST(t.first_seen, EXCLUDED.first_seen),"
            "    last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen)"
            "  RETURNING 1"
            ")"
            " SELECT count(*) FROM ins",
            params,
        )
        (written,) = cursor.fetchone()
        cursor.execute("DROP TABLE plunk_seed_contact")
    return written
