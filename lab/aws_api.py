"""The lab's stand-in for the AWS APIs: moto's server, on the lab bridge, for the hosts' agent and for the tests.

    python3 lab/aws_api.py --listen=10.213.37.1:5000

Every service moto knows answers on that one endpoint (the agent's --aws-endpoint-url; boto3's endpoint_url), with
any credentials, in any region. State is in memory: it lives and dies with the daemon. It logs one line once it
listens, and exits cleanly (status 0) on SIGTERM or SIGINT.

moto's server needs Flask and flask-cors (moto's "server" extra), besides the services' own extras.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import threading
import time
import urllib.error
import urllib.request


def register_replaces() -> None:
    """Make Cloud Map's RegisterInstance behave as AWS documents it: registering an instance id that exists updates
    it. moto 5.2.5 appends a second record instead, so a deregistration would leave the first one behind."""
    from moto.servicediscovery.models import ServiceDiscoveryBackend

    appending = ServiceDiscoveryBackend.register_instance
    if getattr(appending, "replaces", False):
        return

    def register_instance(self, service_id, instance_id, *args, **kwargs):
        service = self.get_service(service_id)
        service.instances[:] = [i for i in service.instances if i.instance_id != instance_id]
        return appending(self, service_id, instance_id, *args, **kwargs)

    register_instance.replaces = True
    ServiceDiscoveryBackend.register_instance = register_instance


# An instance tagged so is terminated as EC2 ends a reclaimed Spot instance (lab/drill.py tags it): moto has no other
# way to end one, and says "user initiated" for every termination.
SPOT_RECLAIM_TAG = "lab:reclaimed-by-spot"
SPOT_TERMINATION = "Server.SpotInstanceTermination"


def spot_reclaims() -> None:
    """Give a terminated instance tagged SPOT_RECLAIM_TAG the state reason EC2 gives a reclaimed Spot instance."""
    from moto.ec2.models.instances import Instance, StateReason

    terminate = Instance.terminate
    if getattr(terminate, "spot_reclaims", False):
        return

    def terminate_as_ec2_would(self):
        previous = terminate(self)
        if any(tag["key"] == SPOT_RECLAIM_TAG for tag in self.get_tags()):
            self.state_reason = StateReason(f"{SPOT_TERMINATION}: Spot instance termination", SPOT_TERMINATION)
        return previous

    terminate_as_ec2_would.spot_reclaims = True
    Instance.terminate = terminate_as_ec2_would


def start(address: str, port: int):
    """moto's ThreadedMotoServer, started on address:port (port 0: any free one); .stop() it.

    It raises at once when it cannot listen (an address in use, say), where moto's own start() would wait for ever.
    """
    try:
        from moto.server import ThreadedMotoServer  # imported here: slow, and wait_until_up needs none of it
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"moto's server cannot run without {error.name}: it needs Flask and flask-cors (moto's server extra)",
            name=error.name,
        ) from error

    class Server(ThreadedMotoServer):
        error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as error:  # the thread's only way to tell start() about it
                self.error = error
                self._server_ready_event.set()

    server = Server(ip_address=address, port=port, verbose=False)
    server.start()
    if isinstance(server.error, SystemExit):  # werkzeug's answer to an address in use, after saying so on stderr
        raise OSError(f"moto's server could not listen on {address}:{port}") from server.error
    if server.error is not None:
        raise server.error
    return server


def url_of(server) -> str:
    """http://host:port of a started server."""
    host, port = server.get_host_and_port()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def wait_until_up(url: str, timeout_s: float) -> None:
    """Return once anything answers HTTP at url (any status), or raise TimeoutError after timeout_s seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, min(2.0, deadline - time.monotonic()))):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (OSError, http.client.HTTPException) as error:  # not listening yet, or not speaking HTTP yet
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url} did not answer within {timeout_s} s: {error}") from None
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="address:port, e.g. 10.213.37.1:5000 (port 0: any)")
    args = parser.parse_args()
    address, port = args.listen.rsplit(":", 1)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    register_replaces()
    spot_reclaims()
    server = start(address.strip("[]"), int(port))
    print(f"aws_api: moto listening on {url_of(server)}", flush=True)
    while not stop.wait(1):
        pass
    server.stop()


if __name__ == "__main__":
    main()
