#!/bin/bash
# The spot-redis host's boot (EC2 user data; cloud-init runs it as root once per instance, on Debian 12).
# infra/bootstrap.py puts the settings in front of it as SPOT_REDIS_* exports. It attaches and mounts the data
# volume, runs the repository's Ansible bundle against this host, registers the host in Cloud Map and tells
# EventBridge whether the dataset was restored. Secrets come from SSM at run time, into a root-only file in /run
# that is removed at exit. Re-running it on the same instance is safe: no mkfs of a volume with a file system,
# no second mount or fstab line, and the same dataset event as the first run.
# Log: /var/log/spot-redis-bootstrap.log and the console. Never `set -x`: the secrets pass through here.
set -euo pipefail
umask 022

# Test knobs (a prefix for every path it touches, the metadata service, waits); production leaves them unset.
ROOT="${SPOT_REDIS_ROOT:-}"
IMDS_URL="${SPOT_REDIS_IMDS_URL:-http://169.254.169.254}"
ATTACH_TIMEOUT="${SPOT_REDIS_ATTACH_TIMEOUT:-600}"   # seconds to wait for the previous host to let the volume go
ATTACH_INTERVAL="${SPOT_REDIS_ATTACH_INTERVAL:-10}"
DEVICE_TIMEOUT="${SPOT_REDIS_DEVICE_TIMEOUT:-120}"   # seconds for the attached volume's block device to appear
RETRY_DELAY="${SPOT_REDIS_RETRY_DELAY:-5}"

LOG_FILE="$ROOT/var/log/spot-redis-bootstrap.log"
FSTAB="$ROOT/etc/fstab"
ETC_DIR="$ROOT/etc/spot-redis"
INVENTORY="$ETC_DIR/inventory.yml"
OPT_DIR="$ROOT/opt/spot-redis"
BUNDLE_DIR="$OPT_DIR/bundle"
VENV_DIR="$OPT_DIR/venv"
STATE_DIR="$ROOT/var/lib/spot-redis"
RUN_DIR="$ROOT/run"
DEV_DIR="$ROOT/dev"
DATA_MOUNT="${SPOT_REDIS_DATA_MOUNT:?}"
MOUNT_POINT="$ROOT$DATA_MOUNT"
VOLUME_ID="${SPOT_REDIS_DATA_VOLUME_ID:?}"
PREFIX="${SPOT_REDIS_PARAMETER_PREFIX:?}"
CLOUDMAP_INSTANCE_ID="redis-host"   # fixed: a replacement host overwrites the record instead of adding one

export AWS_DEFAULT_REGION="${SPOT_REDIS_REGION:?}" AWS_REGION="$SPOT_REDIS_REGION" AWS_PAGER=""
export DEBIAN_FRONTEND=noninteractive HOME="${HOME:-/root}"
: "${SPOT_REDIS_STACK:?}" "${SPOT_REDIS_BUNDLE_BUCKET:?}" "${SPOT_REDIS_BUNDLE_KEY:?}"
: "${SPOT_REDIS_CLOUDMAP_SERVICE_ID:?}" "${SPOT_REDIS_ANSIBLE_CORE_VERSION:?}"

STEP="start"
SECRETS_DIR=""
TEE_PID=""

# Both streams go to the log; messages go to stderr so that $(...) captures only a command's own output.
log() { printf '%s spot-redis-bootstrap: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
step() { STEP="$1"; log "=== $1"; }

# retry ATTEMPTS COMMAND...: for calls that fail transiently (apt mirrors, AWS APIs right after boot).
retry() {
  local attempts="$1" n=1
  shift
  until "$@"; do
    if ((n >= attempts)); then
      log "failed $attempts times: $1 ${2:-}"
      return 1
    fi
    log "attempt $n of $attempts failed ($1 ${2:-}), again in ${RETRY_DELAY}s"
    n=$((n + 1))
    sleep "$RETRY_DELAY"
  done
}

remove_secrets() {
  if [[ -n "$SECRETS_DIR" ]]; then
    rm -rf -- "$SECRETS_DIR"
    SECRETS_DIR=""
  fi
}

# A host that failed to boot still runs (EC2 health is fine): tell the team through the notify Lambda.
report_failure() {
  [[ -n "${INSTANCE_ID:-}" ]] && command -v aws >/dev/null || return 0
  local entries
  entries="$(python3 -c 'import json, sys
detail = {"instance-id": sys.argv[1], "stack": sys.argv[2], "step": sys.argv[3]}
print(json.dumps([{"Source": "spot-redis", "DetailType": "Redis Host Bootstrap Failed", "Detail": json.dumps(detail)}]))' \
    "$INSTANCE_ID" "$SPOT_REDIS_STACK" "$STEP")" || return 0
  aws events put-events --entries "$entries" >/dev/null || log "could not report the failure to EventBridge"
}

on_exit() {
  local rc=$?
  remove_secrets
  if ((rc == 0)); then
    log "done in ${SECONDS}s"
  else
    log "FAILED in step '$STEP' (exit $rc) after ${SECONDS}s; log: /var/log/spot-redis-bootstrap.log"
    report_failure
  fi
  if [[ -n "$TEE_PID" ]]; then
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null || true
  fi
  exit "$rc"
}

start_logging() {
  if [[ -z "$ROOT" && "$(id -u)" != 0 ]]; then
    die "must run as root"
  fi
  mkdir -p "$(dirname "$LOG_FILE")"
  touch "$LOG_FILE"
  chmod 0640 "$LOG_FILE"
  exec > >(tee -a "$LOG_FILE") 2>&1
  TEE_PID=$!
  trap on_exit EXIT
  log "stack $SPOT_REDIS_STACK, region $SPOT_REDIS_REGION, volume $VOLUME_ID at $DATA_MOUNT"
}

install_packages() {
  step "1/13 install packages (awscli, python3-venv, python3-apt, curl)"
  retry 3 apt-get -q -o DPkg::Lock::Timeout=300 update
  retry 3 apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends \
    awscli python3-venv python3-apt curl ca-certificates
}

# Debian's AMIs do not ship the SSM agent: Session Manager (the only way in, no SSH port is open) needs it.
install_ssm_agent() {
  step "2/13 SSM agent (Session Manager)"
  if dpkg-query -W -f='${Status}' amazon-ssm-agent 2>/dev/null | grep -q 'ok installed'; then
    log "amazon-ssm-agent is installed"
  else
    local arch url deb
    arch="$(dpkg --print-architecture)"
    url="https://s3.${SPOT_REDIS_REGION}.amazonaws.com/amazon-ssm-${SPOT_REDIS_REGION}/latest/debian_${arch}/amazon-ssm-agent.deb"
    mkdir -p "$RUN_DIR"
    deb="$(mktemp "$RUN_DIR/amazon-ssm-agent.XXXXXX.deb")"
    log "installing amazon-ssm-agent from $url"
    retry 3 curl -sS --fail --location --proto '=https' -o "$deb" "$url"
    dpkg -i "$deb"
    rm -f -- "$deb"
  fi
  systemctl enable --now amazon-ssm-agent
}

imds_get() {
  curl -sS --fail --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" \
    "$IMDS_URL/latest/meta-data/$1"
}

read_metadata() {
  step "3/13 instance metadata (IMDSv2)"
  IMDS_TOKEN="$(curl -sS --fail --retry 5 --retry-connrefused -X PUT \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" "$IMDS_URL/latest/api/token")"
  INSTANCE_ID="$(imds_get instance-id)"
  PRIVATE_IP="$(imds_get local-ipv4)"
  local mac
  mac="$(imds_get mac)"
  VPC_CIDRS="$(imds_get "network/interfaces/macs/$mac/vpc-ipv4-cidr-blocks")"
  [[ "$INSTANCE_ID" == i-* && -n "$PRIVATE_IP" && -n "$VPC_CIDRS" ]] || die "unexpected instance metadata"
  log "instance $INSTANCE_ID, private address $PRIVATE_IP, VPC $(echo "$VPC_CIDRS" | paste -sd, -)"
}

# Prints "<state> <attached instance or None>" of the data volume.
volume_state() {
  aws ec2 describe-volumes --volume-ids "$VOLUME_ID" \
    --query 'Volumes[0].[State, Attachments[0].InstanceId]' --output text | tr -s '\t' ' '
}

attach_volume() {
  step "4/13 attach data volume $VOLUME_ID"
  local deadline=$((SECONDS + ATTACH_TIMEOUT)) state holder
  while :; do
    read -r state holder < <(volume_state || echo "unknown None")
    if [[ "$state" == "in-use" && "$holder" == "$INSTANCE_ID" ]]; then
      log "the volume is attached to this instance"
      break
    elif [[ "$state" == "available" ]]; then
      log "the volume is available: attaching it as /dev/sdf"
      if aws ec2 attach-volume --volume-id "$VOLUME_ID" --instance-id "$INSTANCE_ID" --device /dev/sdf >/dev/null; then
        break
      fi
      log "attach-volume failed (another host may have been faster); looking again"
    elif [[ "$state" == "in-use" ]]; then
      log "the volume is still in use by $holder (the previous host); waiting for it to be released"
    elif [[ "$state" == "error" || "$state" == "deleting" || "$state" == "deleted" ]]; then
      die "the data volume $VOLUME_ID is $state"
    else
      log "the volume is $state; waiting"
    fi
    ((SECONDS < deadline)) || die "the data volume $VOLUME_ID was not available within ${ATTACH_TIMEOUT}s (last: $state $holder)"
    sleep "$ATTACH_INTERVAL"
  done
  find_device
}

# Nitro: EBS volumes are NVMe devices whose serial is the volume id without its dash. Xen: /dev/xvdf.
find_device() {
  local by_id="$DEV_DIR/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME_ID//-/}"
  local deadline=$((SECONDS + DEVICE_TIMEOUT)) candidate
  DEVICE=""
  while [[ -z "$DEVICE" ]]; do
    for candidate in "$by_id" "$DEV_DIR/sdf" "$DEV_DIR/xvdf"; do
      if [[ -e "$candidate" ]]; then
        DEVICE="$candidate"
        break
      fi
    done
    if [[ -z "$DEVICE" ]]; then
      ((SECONDS < deadline)) || die "no block device for $VOLUME_ID after ${DEVICE_TIMEOUT}s ($by_id, /dev/sdf, /dev/xvdf)"
      sleep 1
    fi
  done
  log "the data volume is $DEVICE ($(readlink -f "$DEVICE"))"
}

mount_volume() {
  step "5/13 file system and mount at $DATA_MOUNT"
  local fs_type rc=0 uuid line tmp
  # blkid -p probes the device itself: exit 2 means no signature at all; anything else but 0 is not "empty".
  fs_type="$(blkid -p -o value -s TYPE "$DEVICE")" || rc=$?
  if ((rc == 2)) && [[ -z "$fs_type" ]]; then
    log "the volume has no file system: making ext4"
    mkfs.ext4 -q -L spot-redis-data "$DEVICE"
    udevadm settle || true
    fs_type=ext4
  elif ((rc != 0)); then
    die "blkid could not tell what $DEVICE holds (exit $rc): not touching it"
  else
    log "the volume has a $fs_type file system: keeping it"
  fi
  uuid="$(blkid -p -o value -s UUID "$DEVICE")"
  [[ -n "$uuid" ]] || die "no file system UUID on $DEVICE"
  line="UUID=$uuid $DATA_MOUNT $fs_type defaults,noatime,nofail 0 2"
  mkdir -p "$(dirname "$FSTAB")"
  touch "$FSTAB"
  if grep -qxF -- "$line" "$FSTAB"; then
    log "fstab already mounts it"
  else
    tmp="$(mktemp "$FSTAB.spot-redis.XXXXXX")"
    awk -v mp="$DATA_MOUNT" '/^[[:space:]]*#/ || $2 != mp' "$FSTAB" >"$tmp"
    printf '%s\n' "$line" >>"$tmp"
    chmod 0644 "$tmp"
    mv -f -- "$tmp" "$FSTAB"
    log "fstab: $line"
    systemctl daemon-reload
  fi
  mkdir -p "$MOUNT_POINT"
  if mountpoint -q "$MOUNT_POINT"; then
    log "$DATA_MOUNT is mounted already"
  else
    mount --fstab "$FSTAB" "$DATA_MOUNT"
    log "mounted $DATA_MOUNT"
  fi
}

# Restored or empty, decided before Redis runs on the volume (Redis creates its files at start). The decision is
# kept per instance, so that a re-run reports what this instance found, not what Redis wrote since.
decide_dataset() {
  step "6/13 dataset: restored or empty"
  local state="$STATE_DIR/dataset" id kind age newest
  if [[ -f "$state" ]] && IFS=$'\t' read -r id kind age <"$state" && [[ "$id" == "$INSTANCE_ID" ]]; then
    DATASET_KIND="$kind" DATA_AGE="$age"
    log "decided by an earlier run on this instance: $DATASET_KIND"
    return
  fi
  newest="$(find "$MOUNT_POINT" -maxdepth 2 -type f \
    \( -path "$MOUNT_POINT/appendonlydir/*" -o -path "$MOUNT_POINT/dump.rdb" \) -printf '%T@\n' | sort -n | tail -n 1)"
  if [[ -n "$newest" ]]; then
    DATASET_KIND="Redis Dataset Restored"
    DATA_AGE=$(($(date +%s) - ${newest%.*}))
    ((DATA_AGE >= 0)) || DATA_AGE=0
    log "the volume holds Redis data; its newest file is ${DATA_AGE}s old"
  else
    DATASET_KIND="Redis Dataset Empty" DATA_AGE=""
    log "the volume holds no Redis data"
  fi
  mkdir -p "$STATE_DIR"
  printf '%s\t%s\t%s\n' "$INSTANCE_ID" "$DATASET_KIND" "$DATA_AGE" >"$state"
}

fetch_bundle() {
  step "7/13 Ansible bundle s3://$SPOT_REDIS_BUNDLE_BUCKET/$SPOT_REDIS_BUNDLE_KEY"
  mkdir -p "$OPT_DIR"
  local zip="$OPT_DIR/bundle.zip"
  retry 3 aws s3 cp --only-show-errors "s3://$SPOT_REDIS_BUNDLE_BUCKET/$SPOT_REDIS_BUNDLE_KEY" "$zip"
  rm -rf -- "$BUNDLE_DIR.new"
  python3 -m zipfile -e "$zip" "$BUNDLE_DIR.new"
  [[ -f "$BUNDLE_DIR.new/ansible/site.yml" && -f "$BUNDLE_DIR.new/ansible.cfg" ]] ||
    die "the bundle has no ansible/site.yml or ansible.cfg"
  rm -rf -- "$BUNDLE_DIR" "$zip"
  mv -- "$BUNDLE_DIR.new" "$BUNDLE_DIR"
}

install_ansible() {
  local version="$SPOT_REDIS_ANSIBLE_CORE_VERSION"
  step "8/13 ansible-core $version in $VENV_DIR"
  if [[ -f "$VENV_DIR/.ansible-core-$version" ]]; then
    log "installed already"
    return
  fi
  rm -rf -- "$VENV_DIR"
  python3 -m venv "$VENV_DIR"
  retry 3 "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "ansible-core==$version"
  touch "$VENV_DIR/.ansible-core-$version"
}

fetch_parameters() {
  aws ssm get-parameters --with-decryption --output json --names \
    "$PREFIX/redis/admin-password" "$PREFIX/redis/app-password" "$PREFIX/redis/monitor-password" \
    "$PREFIX/slack-webhook-url" "$PREFIX/heartbeat-url" >"$1"
}

# Secrets: aws writes them into a file in a root-only directory of /run (tmpfs), python turns that into the
# vars file; they are never in a shell variable, an argument or this log. Both go when Ansible is done (or at exit).
read_secrets() {
  step "9/13 secrets from SSM under $PREFIX"
  mkdir -p "$RUN_DIR"
  SECRETS_DIR="$(mktemp -d "$RUN_DIR/spot-redis-bootstrap.XXXXXX")"
  chmod 0700 "$SECRETS_DIR"
  VARS_FILE="$SECRETS_DIR/vars.json"
  local raw="$SECRETS_DIR/parameters.json"
  (
    umask 077
    retry 3 fetch_parameters "$raw"
  )
  python3 - "$PREFIX" "$raw" "$VARS_FILE" <<'PY'
import json, os, sys
prefix, raw, out = sys.argv[1:4]
# The same table as infra/bootstrap.py's SECRET_PARAMETERS.
table = {
    "redis/admin-password": ["redis_admin_password"],
    "redis/app-password": ["redis_app_password"],
    "redis/monitor-password": ["redis_monitor_password", "redis_exporter_redis_password"],
    "slack-webhook-url": ["alertmanager_slack_webhook_url"],
    "heartbeat-url": ["alertmanager_heartbeat_url"],
}
with open(raw) as f:
    values = {p["Name"]: p["Value"] for p in json.load(f).get("Parameters", [])}
missing = [f"{prefix}/{name}" for name in table if not values.get(f"{prefix}/{name}")]
if missing:
    sys.exit("missing or empty SSM parameters: " + ", ".join(missing))
variables = {var: values[f"{prefix}/{name}"] for name, names in table.items() for var in names}
with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
    json.dump(variables, f)
print("secrets read into " + ", ".join(sorted(variables)))
PY
  rm -f -- "$raw"
}

write_inventory() {
  step "10/13 local inventory $INVENTORY"
  mkdir -p "$ETC_DIR"
  (
    umask 077
    python3 - "$INVENTORY" "$INSTANCE_ID" "$PRIVATE_IP" "$VPC_CIDRS" "$DATA_MOUNT" \
      "${SPOT_REDIS_ADMIN_CIDRS:-}" "${SPOT_REDIS_REDIS_ALLOWED_CIDRS:-}" <<'PY'
import json, os, sys
path, instance_id, address, vpc_cidrs, data_dir, admin, allowed = sys.argv[1:8]
split = lambda text: [item for item in text.replace(",", " ").split() if item]
# JSON is YAML. The instance id is the host's name, as in inventories/aws: pushes and boots render the same config.
inventory = {"all": {
    "children": {"redis": {"hosts": {instance_id: {}}}, "monitoring": {"hosts": {instance_id: {}}}},
    "vars": {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "private_address": address,
        "monitoring_addresses": [address],
        "admin_cidrs": split(admin),
        # The security group is the precise filter; the host firewall admits the VPC (and any extra networks).
        "redis_allowed_cidrs": split(vpc_cidrs) + [c for c in split(allowed) if c not in split(vpc_cidrs)],
        "redis_monitoring_addresses": [address],
        "redis_data_dir": data_dir,
    },
}}
tmp = path + ".tmp"
with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(inventory, f, indent=2)
os.chmod(tmp, 0o600)
os.replace(tmp, path)
PY
  )
}

run_ansible() {
  step "11/13 ansible-playbook site.yml (local)"
  (
    cd "$BUNDLE_DIR"
    ANSIBLE_CONFIG="$BUNDLE_DIR/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
      "$VENV_DIR/bin/ansible-playbook" -i "$INVENTORY" -e "@$VARS_FILE" "$BUNDLE_DIR/ansible/site.yml"
  )
  remove_secrets
}

register_cloudmap() {
  step "12/13 Cloud Map record $CLOUDMAP_INSTANCE_ID"
  local operation status n
  operation="$(retry 3 aws servicediscovery register-instance --service-id "$SPOT_REDIS_CLOUDMAP_SERVICE_ID" \
    --instance-id "$CLOUDMAP_INSTANCE_ID" --attributes "AWS_INSTANCE_IPV4=$PRIVATE_IP" \
    --query OperationId --output text)"
  for n in $(seq 1 30); do
    status="$(aws servicediscovery get-operation --operation-id "$operation" --query Operation.Status --output text)"
    [[ "$status" == "SUCCESS" ]] && break
    [[ "$status" == "FAIL" ]] && die "Cloud Map operation $operation failed"
    ((n < 30)) || die "Cloud Map operation $operation still $status"
    sleep "$RETRY_DELAY"
  done
  log "Cloud Map: $CLOUDMAP_INSTANCE_ID -> $PRIVATE_IP in $SPOT_REDIS_CLOUDMAP_SERVICE_ID"
}

put_dataset_event() {
  step "13/13 EventBridge: $DATASET_KIND"
  local entries failed
  entries="$(python3 - "$DATASET_KIND" "$INSTANCE_ID" "$SPOT_REDIS_STACK" "$DATA_AGE" <<'PY'
import json, sys
kind, instance_id, stack, age = sys.argv[1:5]
detail = {"instance-id": instance_id, "stack": stack}
if kind == "Redis Dataset Restored":
    detail["data-age-seconds"] = int(age)
print(json.dumps([{"Source": "spot-redis", "DetailType": kind, "Detail": json.dumps(detail)}]))
PY
  )"
  failed="$(retry 3 aws events put-events --entries "$entries" --query FailedEntryCount --output text)"
  [[ "$failed" == "0" ]] || die "EventBridge refused the event: $entries"
  log "event sent: $DATASET_KIND"
}

main() {
  start_logging
  install_packages
  install_ssm_agent
  read_metadata
  attach_volume
  mount_volume
  decide_dataset
  fetch_bundle
  install_ansible
  read_secrets
  write_inventory
  run_ansible
  register_cloudmap
  put_dataset_event
}

main "$@"
