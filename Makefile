# LogCaster: the two commands of the README, plus benchmarks and fuzzing.
# Every target does its own set-up (scripts/setup.sh is idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
FUZZ_SECONDS ?= 60
# make bench-e2e SCENARIOS=afxdp-parquet,rsyslog E2E_ARGS=--quick
SCENARIOS ?=
E2E_ARGS ?=

.PHONY: setup test demo bench bench-e2e fuzz vm-test clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m pytest tests

demo: setup
	$(VENV)/bin/logcaster demo

bench: setup
	$(PY) bench/decode.py
	$(PY) bench/pipeline.py
	$(PY) bench/relay.py
	$(PY) bench/kafka.py
	$(PY) bench/xdp.py

bench-e2e: setup
	$(PY) bench/e2e.py $(if $(SCENARIOS),--scenarios $(SCENARIOS)) $(E2E_ARGS)

fuzz: setup
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# The test VM alone (it also runs inside `make test`): a Debian 12 guest with a virtio NIC under QEMU.
vm-test: setup
	$(PY) -m pytest tests/system/test_vm.py tests/unit/test_vagrant.py -v

clean:
	rm -rf build dpdk_shim/_core*.so dpdk_shim/*.o logcaster-data .pytest_cache
