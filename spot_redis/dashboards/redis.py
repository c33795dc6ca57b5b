"""The Redis dashboard: throughput, hit ratio, memory against maxmemory, evictions, clients, persistence.

Metrics of redis_exporter 1.45 (Debian 12), job `redis`.
"""

from __future__ import annotations

from spot_redis.dashboards.panels import HOST, ON_OFF_MAPPINGS, STATUS_MAPPINGS, Query, Row, build, graph, single


def rate(counter: str, by: str = "host") -> str:
    return f"sum by ({by}) (rate({counter}{{{HOST}}}[$__rate_interval]))"


# Shared with the stack dashboard (its "data age").
LAST_SAVE = f"redis_rdb_last_save_timestamp_seconds{{{HOST}}}"
RDB_SAVE_AGE = f"time() - {LAST_SAVE}"
HITS, MISSES = rate("redis_keyspace_hits_total"), rate("redis_keyspace_misses_total")


def throughput() -> Row:
    return Row(
        "Throughput",
        [
            graph("Commands per second", "ops", [Query(rate("redis_commands_processed_total"))]),
            graph(
                "Commands per second, top 10 commands",
                "ops",
                [Query(f"topk(10, {rate('redis_commands_total', by='host, cmd')})", "{{host}} {{cmd}}")],
            ),
            graph(
                "Hit ratio",
                "percentunit",
                [Query(f"{HITS} / ({HITS} + {MISSES})")],
                "Reads that found their key, of all key reads (keyspace hits and misses). Empty while nothing reads.",
            ),
        ],
    )


def memory() -> Row:
    return Row(
        "Memory",
        [
            graph(
                "Memory used against maxmemory",
                "bytes",
                [
                    Query(f"redis_memory_used_bytes{{{HOST}}}", "{{host}} used"),
                    Query(f"redis_memory_max_bytes{{{HOST}}}", "{{host}} maxmemory"),
                ],
            ),
            graph(
                "Memory used, fraction of maxmemory",
                "percentunit",
                [Query(f"redis_memory_used_bytes{{{HOST}}} / (redis_memory_max_bytes{{{HOST}}} > 0)")],
                "RedisMemoryNearMax warns above 90%. Empty when maxmemory is 0 (no limit).",
            ),
            graph(
                "Evicted and expired keys per second",
                "short",
                [
                    Query(rate("redis_evicted_keys_total"), "{{host}} evicted"),
                    Query(rate("redis_expired_keys_total"), "{{host}} expired"),
                ],
                "Evicted: removed to stay under maxmemory (allkeys-lru). Expired: their TTL ran out.",
            ),
        ],
    )


def clients() -> Row:
    return Row(
        "Clients",
        [
            graph(
                "Clients",
                "short",
                [
                    Query(f"redis_connected_clients{{{HOST}}}", "{{host}} connected"),
                    Query(f"redis_blocked_clients{{{HOST}}}", "{{host}} blocked"),
                    Query(f"redis_config_maxclients{{{HOST}}}", "{{host}} maxclients"),
                ],
            ),
            graph(
                "Rejected connections",
                "short",
                [Query(f"sum by (host) (increase(redis_rejected_connections_total{{{HOST}}}[$__rate_interval]))")],
                "Connections refused because Redis had reached maxclients (RedisRejectedConnections warns).",
            ),
        ],
    )


def persistence() -> Row:
    return Row(
        "Persistence",
        [
            single("Last RDB save", "dateTimeFromNow", [Query(f"{LAST_SAVE} * 1000")]),
            single(
                "Last RDB save and AOF write",
                "none",
                [
                    Query(f"redis_rdb_last_bgsave_status{{{HOST}}}", "{{host}} RDB save"),
                    Query(f"redis_aof_last_write_status{{{HOST}}}", "{{host}} AOF write"),
                    Query(f"redis_aof_last_bgrewrite_status{{{HOST}}}", "{{host}} AOF rewrite"),
                ],
                mappings=STATUS_MAPPINGS,
            ),
            single("AOF", "none", [Query(f"redis_aof_enabled{{{HOST}}}", "{{host}} AOF")], mappings=ON_OFF_MAPPINGS),
            single("Unsaved changes", "short", [Query(f"redis_rdb_changes_since_last_save{{{HOST}}}")]),
            graph(
                "Age of the last RDB save",
                "s",
                [Query(RDB_SAVE_AGE)],
                "Seconds since the last successful RDB snapshot: a Spot interruption falls back on at most this "
                "much older data, less what the AOF holds. RedisNoRecentSave warns after an hour with changes.",
            ),
        ],
    )


def dashboard() -> dict:
    return build(
        "spot-redis-redis",
        "spot-redis / Redis",
        "Redis on the spot-redis hosts, from redis_exporter (job redis).",
        "redis_up",
        [throughput(), memory(), clients(), persistence()],
    )
