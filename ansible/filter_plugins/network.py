"""Jinja2 filters for validating and splitting firewall allow-lists.

Pure Python (``ipaddress`` only): the unit tests import this file without Ansible.

    {{ redis_allowed_cidrs | invalid_cidrs }}                        -> entries to reject
    {{ sources | invalid_cidrs(allow_addresses=true) }}              -> same, plain addresses allowed
    {{ redis_bind_addresses | invalid_bind_addresses }}              -> non-addresses and wildcards
    {{ sources | cidrs_of_family(4) }}                               -> ['10.0.0.0/24', '10.0.1.5/32']
    {{ listen_address | host_port(9100) }}                           -> '10.0.0.5:9100', '[2001:db8::5]:9100'
"""

import ipaddress

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - exercised when imported without Ansible

    class AnsibleFilterError(ValueError):
        """Stand-in used when Ansible is not installed (unit tests)."""


def _parse(entry):
    """Return ``ip_network(entry, strict=False)``, or None when entry is not an address or network."""
    if not isinstance(entry, str) or not entry or entry != entry.strip() or "%" in entry:
        return None
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def invalid_cidrs(entries, allow_addresses=False):
    """Return the entries that must not go into an allow-list, in their original order.

    An entry is valid when it is a network in CIDR notation with an explicit prefix length
    ('10.0.0.0/24', '10.0.0.5/32', '2001:db8::/48') and no host bits set ('10.0.0.1/24' is
    invalid: the author probably meant one host, not the whole /24). A prefix length of 0
    ('0.0.0.0/0', '::/0') is invalid too: it would open the port to the world.

    With ``allow_addresses=True`` a plain address ('10.0.0.5', '2001:db8::5') is valid as well.
    Anything else ('foo', '', 42, '10.0.0.300/32') is returned.
    """
    if entries is None:
        return []
    if isinstance(entries, (str, bytes)) or not hasattr(entries, "__iter__"):
        raise AnsibleFilterError(f"invalid_cidrs expects a list, got {entries!r}")
    bad = []
    for entry in entries:
        network = _parse(entry)
        if network is None:
            bad.append(entry)
        elif "/" not in entry:
            if not allow_addresses:
                bad.append(entry)
        else:
            try:
                ipaddress.ip_network(entry, strict=True)
            except ValueError:
                bad.append(entry)
                continue
            if network.prefixlen == 0:
                bad.append(entry)
    return bad


def invalid_bind_addresses(entries):
    """Return the entries that Redis must not be told to bind to, in their original order.

    Valid: a single IP address, optionally with Redis' '-' prefix (bind if it exists). Invalid: anything
    else, and every spelling of a wildcard ('0.0.0.0', '::', '0:0::0', '-::0', '*'), which would make
    Redis listen on every interface.
    """
    if isinstance(entries, (str, bytes)) or not hasattr(entries, "__iter__"):
        raise AnsibleFilterError(f"invalid_bind_addresses expects a list, got {entries!r}")
    bad = []
    for entry in entries:
        try:
            address = ipaddress.ip_address(str(entry).removeprefix("-"))
        except ValueError:
            bad.append(entry)
            continue
        if address.is_unspecified:
            bad.append(entry)
    return bad


def cidrs_of_family(entries, family):
    """Return the entries of IP version ``family`` (4 or 6), normalised to CIDR strings.

    Normalisation is ``str(ip_network(entry, strict=False))``: a plain address becomes a /32
    (IPv4) or /128 (IPv6) network, and host bits are cleared. Validate the list first with
    ``invalid_cidrs``: an entry that is neither an address nor a network raises an error here,
    so that a typo can never silently disappear from a firewall rule.
    """
    try:
        family = int(family)
    except (TypeError, ValueError):
        family = None
    if family not in (4, 6):
        raise AnsibleFilterError(f"cidrs_of_family: family must be 4 or 6, got {family!r}")
    if entries is None:
        return []
    if isinstance(entries, (str, bytes)) or not hasattr(entries, "__iter__"):
        raise AnsibleFilterError(f"cidrs_of_family expects a list, got {entries!r}")
    result = []
    for entry in entries:
        network = _parse(entry)
        if network is None:
            raise AnsibleFilterError(f"cidrs_of_family: {entry!r} is not an IP address or network")
        if network.version == family:
            result.append(str(network))
    return result


def host_port(address, port):
    """Return ``host:port`` for a flag, a URL or a scrape target, an IPv6 address in brackets.

    '10.0.0.5', 9100 -> '10.0.0.5:9100'; '2001:db8::5', '9100' -> '[2001:db8::5]:9100'. A name
    ('localhost') is left as it is, and so is an address already in brackets. The port is written as
    an integer; one that is not an integer raises an error rather than render a target that cannot work.
    """
    if address is None or isinstance(address, (bool, list, dict)):
        raise AnsibleFilterError(f"host_port expects an address or a host name, got {address!r}")
    host = str(address)
    if not host or host != host.strip():
        raise AnsibleFilterError(f"host_port expects an address or a host name, got {address!r}")
    if isinstance(port, bool):
        raise AnsibleFilterError(f"host_port: the port must be an integer, got {port!r}")
    try:
        number = int(str(port).strip())
    except ValueError:
        raise AnsibleFilterError(f"host_port: the port must be an integer, got {port!r}") from None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{number}"


class FilterModule:
    """Network allow-list filters."""

    def filters(self):
        return {
            "invalid_cidrs": invalid_cidrs,
            "invalid_bind_addresses": invalid_bind_addresses,
            "cidrs_of_family": cidrs_of_family,
            "host_port": host_port,
        }
