"""What every monitoring service shares: enabled and running, on the private address only, behind the firewall."""

import ipaddress

import pytest

# service -> (the inventory group whose hosts run it, the /etc/default file that holds its flags)
SERVICES = {
    "prometheus-node-exporter": ("redis", "/etc/default/prometheus-node-exporter"),
    "prometheus-redis-exporter": ("redis", "/etc/default/prometheus-redis-exporter"),
    "prometheus": ("monitoring", "/etc/default/prometheus"),
    "prometheus-alertmanager": ("monitoring", "/etc/default/prometheus-alertmanager"),
}


@pytest.fixture(params=SERVICES.items(), ids=SERVICES.keys())
def service(request, groups):
    name, (group, default_file) = request.param
    if group not in groups:
        pytest.skip(f"{name} runs on group {group}")
    return name, default_file


def test_service_is_enabled_and_running(host, service):
    unit = host.service(service[0])
    assert unit.is_enabled
    assert unit.is_running


def test_listens_on_the_private_address_only(listen_address, listening_on, private_addresses, service):
    name, default_file = service
    address, port = listen_address(default_file)
    assert address in private_addresses, f"{name} is told to listen on {address}, not a private address"
    assert ipaddress.ip_address(address).is_private
    assert listening_on(port) == {address}, f"{name} listens on {listening_on(port)}, not on {address} alone"


def test_port_is_allow_listed(listen_address, assert_port_allow_listed, service):
    assert_port_allow_listed(listen_address(service[1])[1])
