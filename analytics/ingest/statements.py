"""PostgreSQL: the statements of the ingest path.

The usual batch (no event in it stored before) is COPYed straight into
`executions`, in a savepoint; its rollups, computed in Python (`rollup.py`), are
then added by one statement (UPSERT_ROLLUPS) that reads them as arrays. When the
COPY meets an event id already stored (a redelivery), the savepoint is rolled
back and the batch takes the careful path: COPYed into a per-connection staging
table, from which STORE_AND_ROLL_UP inserts the new events (an event id seen
before is skipped) and, from exactly the rows it inserted (RETURNING), adds to
the minute, hour and day rollups (per version, subscription and key, and per
API) and latency histograms: the same sums and buckets as `rollup.py`, computed
by the database. Both lock rollup rows in the same order (resolution, then key).
"""

from __future__ import annotations

import math

from analytics.ingest.rollup import API_KEY, COLUMNS, COUNTER_KEY, COUNTERS, HISTOGRAM_COLUMNS
from analytics.stats.histogram import BUCKETS, MIN_MS, RATIO

STAGING = "executions_incoming"

CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} "
    "(LIKE executions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


def bucket_sql(value: str) -> str:
    """histogram.bucket_of in SQL."""
    return (
        f"CASE WHEN {value} < {MIN_MS!r}::float8 THEN 0 ELSE LEAST({BUCKETS - 1}, "
        f"1 + floor(ln({value} / {MIN_MS!r}::float8) / {math.log(RATIO)!r}::float8)::int) END"
    )


_NAMES = ", ".join(COLUMNS)
_KEY = "version, subscription_id, key_id, status_class"
_SUMS = (
    "sum(calls), sum(bytes_in), sum(bytes_out), sum(latency_sum), max(latency_max), "
    "sum(upstream_calls), sum(upstream_sum), sum(gateway_calls), sum(gateway_sum), max(last_at)"
)
_COUNTERS = (
    "calls, bytes_in, bytes_out, latency_sum, latency_max, "
    "upstream_calls, upstream_sum, gateway_calls, gateway_sum, last_at"
)
_ADD = ", ".join(
    f"{c} = r.{c} + excluded.{c}"
    for c in (
        "calls",
        "bytes_in",
        "bytes_out",
        "latency_sum",
        "upstream_calls",
        "upstream_sum",
        "gateway_calls",
        "gateway_sum",
    )
)

STORE_AND_ROLL_UP = f"""
WITH inserted AS (
    INSERT INTO executions ({_NAMES})
    SELECT {_NAMES} FROM {STAGING}
    ON CONFLICT (event_id) DO NOTHING
    RETURNING api_id, started_at, version, subscription_id, key_id, status_code,
              latency_ms, upstream_ms, gateway_ms, bytes_in, bytes_out
),
minutes AS (
    SELECT api_id, date_trunc('minute', started_at, 'UTC') AS bucket_start,
           coalesce(version, 0) AS version, coalesce(subscription_id, '') AS subscription_id,
           coalesce(key_id, '') AS key_id, status_code / 100 AS status_class,
           count(*) AS calls, sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out,
           sum(latency_ms) AS latency_sum, max(latency_ms) AS latency_max,
           count(upstream_ms) AS upstream_calls, coalesce(sum(upstream_ms), 0) AS upstream_sum,
           count(gateway_ms) AS gateway_calls, coalesce(sum(gateway_ms), 0) AS gateway_sum,
           max(started_at) AS last_at
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5, 6
),
levels AS (
    SELECT api_id, 60 AS resolution_s, bucket_start, {_KEY}, {_COUNTERS} FROM minutes
    UNION ALL
    SELECT api_id, 3600, date_trunc('hour', bucket_start, 'UTC'), {_KEY}, {_SUMS}
    FROM minutes GROUP BY 1, 3, 4, 5, 6, 7
    UNION ALL
    SELECT api_id, 86400, date_trunc('day', bucket_start, 'UTC'), {_KEY}, {_SUMS}
    FROM minutes GROUP BY 1, 3, 4, 5, 6, 7
),
counters AS (
    INSERT INTO execution_rollups AS r (api_id, resolution_s, bucket_start, {_KEY}, {_COUNTERS})
    SELECT api_id, resolution_s, bucket_start, {_KEY}, {_COUNTERS} FROM levels
    ORDER BY 2, 1, 3, 4, 5, 6, 7
    ON CONFLICT (api_id, resolution_s, bucket_start, {_KEY}) DO UPDATE SET {_ADD},
        latency_max = greatest(r.latency_max, excluded.latency_max),
        last_at = greatest(r.last_at, excluded.last_at)
    RETURNING 1
),
api_counters AS (
    INSERT INTO api_rollups AS r (api_id, resolution_s, bucket_start, status_class, {_COUNTERS})
    SELECT api_id, resolution_s, bucket_start, status_class, {_SUMS} FROM levels
    GROUP BY 1, 2, 3, 4
    ORDER BY 2, 1, 3, 4
    ON CONFLICT (api_id, resolution_s, bucket_start, status_class) DO UPDATE SET {_ADD},
        latency_max = greatest(r.latency_max, excluded.latency_max),
        last_at = greatest(r.last_at, excluded.last_at)
    RETURNING 1
),
buckets AS (
    SELECT api_id, date_trunc('minute', started_at, 'UTC') AS bucket_start, m.metric,
           {bucket_sql("m.value")} AS bucket, count(*) AS count
    FROM inserted
    CROSS JOIN LATERAL (VALUES ('t', latency_ms), ('u', upstream_ms), ('g', gateway_ms))
        AS m (metric, value)
    WHERE m.value IS NOT NULL
    GROUP BY 1, 2, 3, 4
),
histograms AS (
    INSERT INTO latency_rollups AS h (api_id, resolution_s, metric, bucket_start, bucket, count)
    SELECT * FROM (
        SELECT api_id, 60, metric, bucket_start, bucket, count FROM buckets
        UNION ALL
        SELECT api_id, 3600, metric, date_trunc('hour', bucket_start, 'UTC'), bucket, sum(count)
        FROM buckets GROUP BY 1, 3, 4, 5
        UNION ALL
        SELECT api_id, 86400, metric, date_trunc('day', bucket_start, 'UTC'), bucket, sum(count)
        FROM buckets GROUP BY 1, 3, 4, 5
    ) AS levels
    ORDER BY 2, 1, 3, 4, 5
    ON CONFLICT (api_id, resolution_s, metric, bucket_start, bucket)
        DO UPDATE SET count = h.count + excluded.count
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM counters),
       (SELECT count(*) FROM api_counters), (SELECT count(*) FROM histograms)
"""  # noqa: S608  # constants only, no input


_TYPES = {
    "api_id": "text",
    "resolution_s": "int",
    "bucket_start": "timestamptz",
    "version": "int",
    "subscription_id": "text",
    "key_id": "text",
    "status_class": "int",
    "metric": "text",
    "bucket": "int",
    "count": "bigint",
    "calls": "bigint",
    "bytes_in": "bigint",
    "bytes_out": "bigint",
    "latency_sum": "float8",
    "latency_max": "float8",
    "upstream_calls": "bigint",
    "upstream_sum": "float8",
    "gateway_calls": "bigint",
    "gateway_sum": "float8",
    "last_at": "timestamptz",
}


def _unnest(columns: tuple[str, ...], first: int) -> str:
    """unnest($first::type[], …): one array parameter per column."""
    arrays = ", ".join(f"${first + i}::{_TYPES[c]}[]" for i, c in enumerate(columns))
    return f"unnest({arrays})"


_N_COUNTER = len(COUNTER_KEY) + len(COUNTERS)
_N_API = len(API_KEY) + len(COUNTERS)

# The rollups of a batch computed in Python (rollup.rollups), as one array per column:
# the counters' columns, then the per-API counters', then the histograms'. Each
# list is already aggregated (one row per key) and sorted in lock order.
UPSERT_ROLLUPS = f"""
WITH counters AS (
    INSERT INTO execution_rollups AS r ({", ".join(COUNTER_KEY + COUNTERS)})
    SELECT * FROM {_unnest(COUNTER_KEY + COUNTERS, 1)}
    ON CONFLICT ({", ".join(COUNTER_KEY)}) DO UPDATE SET {_ADD},
        latency_max = greatest(r.latency_max, excluded.latency_max),
        last_at = greatest(r.last_at, excluded.last_at)
    RETURNING 1
),
api_counters AS (
    INSERT INTO api_rollups AS r ({", ".join(API_KEY + COUNTERS)})
    SELECT * FROM {_unnest(API_KEY + COUNTERS, 1 + _N_COUNTER)}
    ON CONFLICT ({", ".join(API_KEY)}) DO UPDATE SET {_ADD},
        latency_max = greatest(r.latency_max, excluded.latency_max),
        last_at = greatest(r.last_at, excluded.last_at)
    RETURNING 1
),
histograms AS (
    INSERT INTO latency_rollups AS h ({", ".join(HISTOGRAM_COLUMNS)})
    SELECT * FROM {_unnest(HISTOGRAM_COLUMNS, 1 + _N_COUNTER + _N_API)}
    ON CONFLICT (api_id, resolution_s, metric, bucket_start, bucket)
        DO UPDATE SET count = h.count + excluded.count
    RETURNING 1
)
SELECT (SELECT count(*) FROM counters), (SELECT count(*) FROM api_counters),
       (SELECT count(*) FROM histograms)
"""  # noqa: S608  # constants only, no input
