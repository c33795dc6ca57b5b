# The README's two commands: `make lab` and `make test`. Both set up what they need on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# php-cli and php-redis: the PHP client (phpredis) that tests/lab/test_clients.py runs from the lab's client namespace.
HOST_PACKAGES := python3-venv debootstrap systemd-container e2fsprogs mount openssh-client openssl iproute2 redis-tools \
  php-cli php-redis
LAB_INVENTORY := inventories/lab

.PHONY: lab lab-up converge verify drill bench bench-alerts lab-down test unit lab-test lint host-packages dashboards

lab: ## boot the lab, configure it, verify it, and leave it running
	$(MAKE) --no-print-directory lab-up
	$(MAKE) --no-print-directory converge
	$(MAKE) --no-print-directory verify
	@python3 -m lab info

lab-up: host-packages $(VENV)/.installed
	python3 -m lab up

converge: $(VENV)/.installed
	@start=$$(date +%s%N); ansible-playbook -i $(LAB_INVENTORY) ansible/site.yml; \
	  echo "converge took $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

verify: $(VENV)/.installed
	pytest tests/verify --hosts=ansible://all --ansible-inventory=$(LAB_INVENTORY)

DRILL ?= notice
drill: ## a Spot interruption drill in the lab (DRILL=notice|hard-kill|lost-disk), from a running lab or from nothing
	@if [ -f .lab/env ] && [ -f .lab/aws.json ]; then $(MAKE) --no-print-directory lab-up; \
	  else $(MAKE) --no-print-directory lab; fi
	python3 -m lab drill --variant $(DRILL)

bench: ## throughput of the role's Redis against Debian's stock config, on a running lab
	python3 -m lab.bench

bench-alerts: ## seconds from Redis down to Slack (firing, resolved), series and Prometheus memory, on a running lab
	python3 -m lab.bench_alerts

lab-down: ## remove every host, namespace, veth, mount and loop device a lab made (even a killed one)
	python3 -m lab down

test: ## the whole suite; the lab it makes is removed at the end, pass or fail
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory lab-test

unit: $(VENV)/.installed
	pytest tests/unit

lab-test: host-packages $(VENV)/.installed
	python3 -m lab down
	trap 'python3 -m lab down' EXIT; $(MAKE) --no-print-directory lab; pytest tests/lab

dashboards: $(VENV)/.installed ## write the Grafana dashboards (spot_redis/dashboards) to dashboards/*.json
	python3 -m spot_redis.dashboards --out dashboards

lint: $(VENV)/.installed
	ruff check .
	ruff format --check .
	ansible-lint ansible/

host-packages:
	@missing=$$(for p in $(HOST_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(VENV)/.installed: requirements.txt pyproject.toml | host-packages
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .  # the `spot-redis` command (spot_redis/cli), from this checkout
	touch $@
