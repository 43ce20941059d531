"""PostgreSQL: store the staged events and roll them up in one statement.

The events are first COPYed into a per-connection staging table; this one
statement inserts the new ones (an event id seen before is skipped), and from
exactly the rows it inserted (RETURNING) adds to the minute, hour and day
rollups (per version, subscription and key, and per API) and latency
histograms. The same sums and buckets as `rollup.py`
(which SQLite uses), computed by the database: no rows go back and forth.
"""

from __future__ import annotations

import math

from analytics.stats.histogram import BUCKETS, MIN_MS, RATIO

STAGING = "executions_incoming"

COLUMNS = (
    "event_id",
    "request_id",
    "api_id",
    "deployment_id",
    "caller_id",
    "method",
    "path",
    "status_code",
    "latency_ms",
    "upstream_ms",
    "bytes_in",
    "bytes_out",
    "started_at",
    "key_id",
    "subscription_id",
    "version",
    "gateway_ms",
)

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
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (api_id, resolution_s, bucket_start, {_KEY}) DO UPDATE SET {_ADD},
        latency_max = greatest(r.latency_max, excluded.latency_max),
        last_at = greatest(r.last_at, excluded.last_at)
    RETURNING 1
),
api_counters AS (
    INSERT INTO api_rollups AS r (api_id, resolution_s, bucket_start, status_class, {_COUNTERS})
    SELECT api_id, resolution_s, bucket_start, status_class, {_SUMS} FROM levels
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
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
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (api_id, resolution_s, metric, bucket_start, bucket)
        DO UPDATE SET count = h.count + excluded.count
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM counters),
       (SELECT count(*) FROM api_counters), (SELECT count(*) FROM histograms)
"""  # noqa: S608  # constants only, no input
