"""Grafana dashboards as code: Redis, the host and the stack, built with Grafana's Python SDK (grafana-foundation-sdk).

`python -m spot_redis.dashboards` (or `make dashboards`) writes them to dashboards/*.json, plain dashboard JSON that
any Grafana imports. Each asks for a Prometheus data source on import (the `datasource` variable) and lists the
hosts Prometheus knows (the `host` variable, from the `host` label the prometheus role puts on every target).
"""
