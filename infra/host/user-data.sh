# The spot-redis host's user data after its settings (cloud-init runs it as root, once per instance, on Debian 12).
# A shim: install what Python needs, fetch the Ansible bundle (which holds the host agent) from S3, and hand over to
# `python3 -m spot_redis.agent boot`. Everything the host does with AWS is in the agent. A failure of the shim itself
# is put on EventBridge when boto3 could be installed. SPOT_REDIS_AWS_ENDPOINT_URL and SPOT_REDIS_IMDS_URL are unset
# in production (the lab points them at its stand-ins). Log: /var/log/spot-redis-boot.log and the console.
set -euo pipefail
umask 022
(umask 077 && touch /var/log/spot-redis-boot.log)  # root only: it holds Ansible's whole output
exec > >(tee -a /var/log/spot-redis-boot.log) 2>&1
STEP=shim-packages
PY=$(cat <<'PYTHON'
import json, os, shlex, sys, urllib.request, zipfile
import boto3
action, step = sys.argv[1], sys.argv[2]
cfg = {k: shlex.split(v)[0] if v else "" for k, _, v in (l.partition("=") for l in open("/etc/spot-redis/host.env").read().split("\n") if "=" in l)}
endpoint = os.environ.get("SPOT_REDIS_AWS_ENDPOINT_URL") or None
client = lambda name: boto3.client(name, region_name=cfg["SPOT_REDIS_REGION"], endpoint_url=endpoint)
if action == "fetch":
    client("s3").download_file(cfg["SPOT_REDIS_BUNDLE_BUCKET"], cfg["SPOT_REDIS_BUNDLE_KEY"], "/opt/spot-redis/bundle.zip")
    zipfile.ZipFile("/opt/spot-redis/bundle.zip").extractall("/opt/spot-redis/bundle.new")
else:
    imds = os.environ.get("SPOT_REDIS_IMDS_URL") or "http://169.254.169.254"
    put = urllib.request.Request(f"{imds}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(put, timeout=2).read().decode()
    get = urllib.request.Request(f"{imds}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
    detail = {"instance-id": urllib.request.urlopen(get, timeout=2).read().decode(), "stack": cfg["SPOT_REDIS_STACK"], "step": step}
    client("events").put_events(Entries=[{"Source": "@SOURCE@", "DetailType": "@BOOTSTRAP_FAILED@", "Detail": json.dumps(detail)}])
PYTHON
)
on_error() {
  echo "spot-redis shim: FAILED in step $STEP"
  python3 -c "$PY" report "$STEP" || echo "spot-redis shim: could not report the failure"
}
trap on_error ERR
for attempt in 1 2 3; do
  if apt-get -q -o DPkg::Lock::Timeout=300 update &&
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends \
      python3 python3-boto3; then break; fi
  if ((attempt == 3)); then false; fi  # the ERR trap reports it (if an older boto3 happens to be there)
  sleep 10
done
STEP=shim-bundle
mkdir -p /opt/spot-redis
rm -rf /opt/spot-redis/bundle.new
python3 -c "$PY" fetch "$STEP"
rm -rf /opt/spot-redis/bundle && mv /opt/spot-redis/bundle.new /opt/spot-redis/bundle
STEP=agent-boot
cd /opt/spot-redis/bundle
exec python3 -m spot_redis.agent boot ${SPOT_REDIS_IMDS_URL:+--imds-url "$SPOT_REDIS_IMDS_URL"} \
  ${SPOT_REDIS_AWS_ENDPOINT_URL:+--aws-endpoint-url "$SPOT_REDIS_AWS_ENDPOINT_URL"} ${SPOT_REDIS_BOOT_OPTIONS:-}
