"""The stack dashboard: instance changes (boots, replacements, Redis restarts) and the age of the data.

On AWS each Spot replacement is a new instance, named by its instance id: a new `host`. "Redis hosts seen" counts
them, as far back as this Prometheus' history goes (the last panel), which on the single-host layout starts with
the instance it runs on.
"""

from __future__ import annotations

from spot_redis.dashboards.panels import HOST, Query, Row, build, graph, single
from spot_redis.dashboards.redis import RDB_SAVE_AGE


def instances() -> Row:
    return Row(
        "Instances",
        [
            single("Host booted", "dateTimeFromNow", [Query(f"node_boot_time_seconds{{{HOST}}} * 1000")]),
            single(
                "Host boots in the time range",
                "short",
                [Query(f"changes(node_boot_time_seconds{{{HOST}}}[$__range])")],
                "Reboots of a host that kept its name.",
            ),
            single(
                "Redis hosts seen in the time range",
                "short",
                [Query("count(count by (host) (count_over_time(redis_up[$__range])))", "Redis hosts")],
                "Distinct hosts that ran Redis: on AWS every Spot replacement is a new one (its instance id).",
            ),
            single(
                "Redis restarts in the time range",
                "short",
                [Query(f"resets(redis_uptime_in_seconds{{{HOST}}}[$__range])")],
                "Times Redis' uptime went back to zero: a restart, which reloads the dataset from disk.",
            ),
            graph(
                "Targets up",
                "none",
                [Query(f"up{{{HOST}}}", "{{host}} {{job}}")],
                "1 while Prometheus can scrape the target (TargetDown fires after two failed scrapes).",
            ),
        ],
    )


def data_age() -> Row:
    return Row(
        "Data age",
        [
            graph(
                "Age of the last RDB save",
                "s",
                [Query(RDB_SAVE_AGE)],
                "Seconds since the last successful RDB snapshot on the data volume.",
            ),
            single(
                "Redis up for",
                "s",
                [Query(f"redis_uptime_in_seconds{{{HOST}}}")],
                "Since Redis last started and loaded its dataset from the data volume.",
            ),
            single(
                "Monitoring history",
                "s",
                [Query("time() - prometheus_tsdb_lowest_timestamp_seconds", "{{host}}'s Prometheus")],
                "How far back this Prometheus' samples go: the other panels cannot look further.",
            ),
        ],
    )


def dashboard() -> dict:
    return build(
        "spot-redis-stack",
        "spot-redis / Stack",
        "The spot-redis stack: its instances and how old its data is.",
        "up",
        [instances(), data_age()],
    )
