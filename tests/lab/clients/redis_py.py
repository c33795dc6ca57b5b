"""redis-py as a Python application uses it, for tests/lab/test_clients.py: run it inside a client namespace.

    python redis_py.py

Connection from the environment (never argv): REDIS_HOST, REDIS_PORT, REDIS_USER, REDIS_PASSWORD. Prints one JSON
object of what it saw; a failure prints {"error": ...} and exits 1. Nothing it prints holds the password.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis

TIMEOUT_S = 3
POOL_SIZE = 4
INCREMENT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
ADMINISTRATION_IN_LUA = "return redis.call('FLUSHALL')"


def connection() -> dict:
    names = {"host": "REDIS_HOST", "port": "REDIS_PORT", "username": "REDIS_USER", "password": "REDIS_PASSWORD"}
    missing = [name for name in names.values() if not os.environ.get(name)]
    if missing:
        raise SystemExit(json.dumps({"error": f"{', '.join(missing)} not set"}))
    values = {key: os.environ[name] for key, name in names.items()}
    return {**values, "port": int(values["port"]), "socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}


def pool_use(settings: dict, prefix: str) -> dict:
    """Many threads share a pool of at most POOL_SIZE connections."""
    pool = redis.BlockingConnectionPool(max_connections=POOL_SIZE, timeout=TIMEOUT_S, decode_responses=True, **settings)
    client = redis.Redis(connection_pool=pool)

    def round_trip(n: int) -> bool:
        key = f"{prefix}:pool:{n}"
        return client.set(key, str(n), ex=60) and client.get(key) == str(n)

    with ThreadPoolExecutor(max_workers=2 * POOL_SIZE) as threads:
        results = list(threads.map(round_trip, range(40)))
    opened = len(pool._connections) if hasattr(pool, "_connections") else None
    pool.disconnect()
    return {"round_trips": len(results), "all_ok": all(results), "connections_opened": opened}


def pipeline_use(client: redis.Redis, prefix: str) -> list:
    """A transaction (MULTI/EXEC) pipeline: three increments and a read in one round trip."""
    key = f"{prefix}:counter"
    with client.pipeline(transaction=True) as pipe:
        pipe.incr(key).incr(key).incrby(key, 40).expire(key, 60).get(key)
        return pipe.execute()


def lua_use(client: redis.Redis, prefix: str) -> dict:
    increment = client.register_script(INCREMENT)  # EVALSHA, then EVAL when the server does not know it yet
    key = f"{prefix}:lua"
    first, second = increment(keys=[key], args=[5]), increment(keys=[key], args=[5])
    client.expire(key, 60)
    inside = error_of(lambda: client.eval(ADMINISTRATION_IN_LUA, 0))
    return {"results": [first, second], "administration_inside_lua": inside}


def pubsub_use(client: redis.Redis, prefix: str) -> dict:
    channel = f"{prefix}:events"
    subscriber = client.pubsub()
    subscriber.subscribe(channel)
    confirmation = subscriber.get_message(timeout=TIMEOUT_S)
    receivers = client.publish(channel, "hello")
    message = subscriber.get_message(timeout=TIMEOUT_S)
    subscriber.close()
    return {
        "subscribed": bool(confirmation) and confirmation["type"] == "subscribe",
        "receivers": receivers,
        "received": message["data"] if message else None,
    }


def error_of(call) -> dict:
    try:
        return {"result": repr(call()), "error": None, "error_type": None}
    except redis.RedisError as error:
        return {"result": None, "error": str(error), "error_type": type(error).__name__}


def denied_use(client: redis.Redis) -> list:
    """Each denied command is an error in the client, on a connection that keeps working (same CLIENT ID)."""
    results = []
    for name, call in (("CONFIG GET", lambda: client.config_get("maxmemory")), ("FLUSHALL", client.flushall)):
        before = client.client_id()
        outcome = error_of(call)
        outcome |= {"command": name, "same_connection_answers": client.ping() and client.client_id() == before}
        results.append(outcome)
    return results


def main() -> dict:
    settings = connection()
    prefix = f"test:clients:py:{uuid.uuid4().hex}"
    client = redis.Redis(decode_responses=True, single_connection_client=True, **settings)
    try:
        client.ping()  # one connection first: an unreachable server fails here, not in every pool thread
        return {
            "pool": pool_use(settings, prefix),
            "pipeline": pipeline_use(client, prefix),
            "lua": lua_use(client, prefix),
            "pubsub": pubsub_use(client, prefix),
            "denied": denied_use(client),
        }
    finally:
        client.close()


if __name__ == "__main__":
    try:
        print(json.dumps(main()))
    except redis.RedisError as error:  # messages from the server or the socket: they never hold the password
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        sys.exit(1)
