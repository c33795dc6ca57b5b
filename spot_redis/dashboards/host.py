"""The host dashboard: CPU with steal, memory, disk use and its growth rate, network. node_exporter 1.5, job `node`."""

from __future__ import annotations

from spot_redis.dashboards.panels import HOST, Query, Row, build, graph

# The file systems the disk alert rules watch; tests/unit/dashboards/test_dashboards.py keeps this equal to the
# rules' selector.
FILESYSTEMS = 'fstype!~"tmpfs|ramfs|overlay|squashfs"'
FS = f"{HOST}, {FILESYSTEMS}"
MOUNT_LEGEND = "{{host}} {{mountpoint}}"


def cpu() -> Row:
    return Row(
        "CPU",
        [
            graph(
                "CPU busy by mode",
                "percentunit",
                [
                    Query(
                        f'avg by (host, mode) (rate(node_cpu_seconds_total{{{HOST}, mode!="idle"}}[$__rate_interval]))',
                        "{{host}} {{mode}}",
                    )
                ],
                "Share of all CPUs' time per mode, idle left out.",
            ),
            graph(
                "CPU steal",
                "percentunit",
                [Query(f'avg by (host) (rate(node_cpu_seconds_total{{{HOST}, mode="steal"}}[$__rate_interval]))')],
                "Time the hypervisor gave to other guests: a noisy neighbour or a burstable instance out of "
                "credits. CpuSteal warns above 10% for 10 minutes.",
            ),
        ],
    )


def memory() -> Row:
    return Row(
        "Memory",
        [
            graph(
                "Memory",
                "bytes",
                [
                    Query(f"node_memory_MemTotal_bytes{{{HOST}}}", "{{host}} total"),
                    Query(
                        f"node_memory_MemTotal_bytes{{{HOST}}} - node_memory_MemAvailable_bytes{{{HOST}}}",
                        "{{host}} used",
                    ),
                ],
            ),
            graph(
                "Memory available",
                "percentunit",
                [Query(f"node_memory_MemAvailable_bytes{{{HOST}}} / node_memory_MemTotal_bytes{{{HOST}}}")],
                "HostMemoryLow warns under 10% for 5 minutes.",
            ),
        ],
    )


def disk() -> Row:
    return Row(
        "Disk",
        [
            graph(
                "Disk used",
                "percentunit",
                [Query(f"1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}}", MOUNT_LEGEND)],
                "DiskAlmostFull warns under 10% free and is critical under 5%.",
            ),
            graph(
                "Disk growth rate (trend of the last hour)",
                "Bps",
                [Query(f"-deriv(node_filesystem_avail_bytes{{{FS}}}[1h])", MOUNT_LEGEND)],
                "Bytes per second the file system fills (negative: frees), by linear regression over the last "
                "hour. DiskWillFillWithin24h warns when the last 6 hours' trend fills it within a day.",
            ),
        ],
    )


def network() -> Row:
    device = f'{HOST}, device!="lo"'
    return Row(
        "Network",
        [
            graph(
                "Network",
                "Bps",
                [
                    Query(
                        f"sum by (host) (rate(node_network_receive_bytes_total{{{device}}}[$__rate_interval]))",
                        "{{host}} received",
                    ),
                    Query(
                        f"sum by (host) (rate(node_network_transmit_bytes_total{{{device}}}[$__rate_interval]))",
                        "{{host}} sent",
                    ),
                ],
            ),
        ],
    )


def dashboard() -> dict:
    return build(
        "spot-redis-host",
        "spot-redis / Host",
        "The spot-redis hosts, from node_exporter (job node).",
        "node_uname_info",
        [cpu(), memory(), disk(), network()],
    )
