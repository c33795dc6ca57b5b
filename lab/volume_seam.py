"""The lab's one seam (see lab/cloud.py): an attached data volume appears as a block device in its host.

    python3 lab/volume_seam.py --listen=<the AWS API's address:port> --state=<.lab>

Every half second: what the local AWS API says is attached where, made true in the lab hosts' /dev.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import cloud, control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="the local AWS API it follows (host:port)")
    parser.add_argument("--state", type=Path, required=True, help="the lab's state folder (.lab)")
    args = parser.parse_args()
    ec2 = cloud.clients()["ec2"]
    print(f"volume seam: following {args.listen}", flush=True)
    while True:
        account = cloud.Account.load(args.state / "aws.json")
        if account is not None and account.volumes:
            running = {name: pid for name, (pid, _) in control.nspawn_hosts().items()}
            try:
                for change in cloud.sync_volume_devices(ec2, account, running):
                    print(f"volume seam: {change}", flush=True)
            except Exception as error:
                print(f"volume seam: {error}", flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
