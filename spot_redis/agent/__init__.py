"""The host agent: everything the Spot host does with AWS, in one program (python3 -m spot_redis.agent).

    boot   prepare the host, wait for and attach the data volume, mount it, decide the dataset, run site.yml on
           itself, register in Cloud Map, announce the dataset
    watch  poll the instance metadata service (IMDSv2) for a Spot interruption notice or a rebalance
           recommendation; on a notice, drain (leave the group, deregister, save, stop Redis, unmount, detach)

It runs on Debian 12's own python3 and python3-boto3 (1.26), which predate AWS_ENDPOINT_URL: the AWS endpoint and
the metadata service's URL are explicit options, unset in production.
"""
