"""python3 -m spot_redis.agent boot | watch | mark-clean | clear-marker (see spot_redis/agent/__init__.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from spot_redis.agent import dataset, layout
from spot_redis.agent.settings import SETTINGS_FILE, HostSettings

log = logging.getLogger("spot-redis-agent")
PRODUCTION_IMDS = "http://169.254.169.254"
MONITORING_UNITS = ("prometheus.service", "prometheus-alertmanager.service")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m spot_redis.agent", description=__doc__)
    parser.add_argument("command", choices=("boot", "watch", "mark-clean", "clear-marker"))
    parser.add_argument("--settings", type=Path, default=SETTINGS_FILE, help="the host's settings (SPOT_REDIS_*)")
    parser.add_argument("--imds-url", default="", help="the instance metadata service (default: EC2's own)")
    parser.add_argument("--aws-endpoint-url", default="", help="one endpoint for every AWS API (default: AWS)")
    parser.add_argument("--no-ssm-agent", action="store_true", help="boot: do not install the SSM agent")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="watch: seconds between two polls")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s spot-redis-agent %(levelname)s %(message)s")
    try:
        settings = HostSettings.read(args.settings)
    except ValueError as error:
        log.error("%s", error)
        return 2
    if args.command == "mark-clean":
        return mark_clean(settings)
    if args.command == "clear-marker":
        cleared = dataset.clear_marker(layout.find_redis_dir(settings.data_mount))
        log.info("clean-stop marker %s", "removed: Redis writes again" if cleared else "absent")
        return 0
    from spot_redis.agent.clients import Clients
    from spot_redis.agent.imds import Imds

    clients = Clients(settings.region, args.aws_endpoint_url or None)
    imds = Imds(args.imds_url or PRODUCTION_IMDS)
    if args.command == "boot":
        return boot(settings, clients, imds, args)
    return watch(settings, clients, imds, args.poll_interval)


def boot(settings, clients, imds, args) -> int:
    from spot_redis.agent.boot import Boot, BootError

    lab_vars = {"spot_host_imds_url": args.imds_url, "spot_host_aws_endpoint_url": args.aws_endpoint_url}
    runner = Boot(
        settings,
        clients,
        imds,
        install_ssm_agent=not args.no_ssm_agent,
        ansible_vars={key: value for key, value in lab_vars.items() if value},
    )
    try:
        decision = runner.boot()
    except BootError as error:
        log.error("boot FAILED: %s", error)
        return 1
    print(json.dumps({"dataset": str(decision.dataset), "steps": runner.steps}), flush=True)
    return 0


def watch(settings, clients, imds, interval_s: float) -> int:
    from spot_redis.agent.announce import Announcer
    from spot_redis.agent.drain import Drain, DrainClients
    from spot_redis.agent.redis_ctl import RedisControl
    from spot_redis.agent.settings import CLOUDMAP_INSTANCE_ID
    from spot_redis.agent.watch import Watcher
    from spot_redis.events import REBALANCE_SEEN, iso_time

    instance_id, private_ip = imds.instance_id(), imds.local_ipv4()
    clients = DrainClients(clients.region, clients.endpoint_url)  # short timeouts: the drain has 2 minutes
    for service in ("ec2", "autoscaling", "servicediscovery", "events"):
        clients.get(service)  # made now (about a second each on Debian's boto3), not inside the two minutes
    announcer = Announcer(clients.events, settings.stack, instance_id)
    drain = Drain(
        clients=clients,
        announcer=announcer,
        instance_id=instance_id,
        private_ip=private_ip,
        volume_id=settings.data_volume_id,
        data_dir=Path(settings.data_mount),
        cloudmap_service_id=settings.cloudmap_service_id,
        redis=RedisControl(),
        cloudmap_instance_id=CLOUDMAP_INSTANCE_ID,
        # The host that monitors itself keeps Prometheus's and Alertmanager's state on the volume (boot.py).
        monitoring_units=() if settings.monitoring_addresses else MONITORING_UNITS,
    )

    def on_rebalance(recommendation) -> None:
        log.info("rebalance recommendation at %s: logged and announced, nothing else", recommendation.notice_time)
        announcer.try_send(REBALANCE_SEEN, **{"noticed-at": iso_time(recommendation.notice_time)})

    watcher = Watcher(imds, drain.drain, on_rebalance, interval_s=interval_s, instance_id=instance_id)
    log.info("watching %s for Spot interruption notices every %.1f s", instance_id, interval_s)
    watcher.run()
    return 0


def mark_clean(settings: HostSettings) -> int:
    """ExecStopPost of redis-server: a marker only when systemd says Redis stopped cleanly."""
    result = os.environ.get("SERVICE_RESULT", "")
    if result != "success":
        log.info("Redis did not stop cleanly (SERVICE_RESULT=%r): no clean-stop marker", result)
        return 0
    data_mount = Path(settings.data_mount)
    if not os.path.ismount(data_mount):
        log.info("%s is not mounted: no clean-stop marker", data_mount)
        return 0
    marker = dataset.write_marker(layout.find_redis_dir(data_mount), _instance_id())
    log.info("clean-stop marker written: last save %s", marker.saved_at)
    return 0


def _instance_id() -> str:
    """The instance id the boot recorded (no metadata call at shutdown), else unknown."""
    from spot_redis.agent.boot import STATE_DIR

    try:
        return json.loads((STATE_DIR / "dataset.json").read_text())["instance-id"]
    except (OSError, ValueError, KeyError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
