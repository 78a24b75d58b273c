# Prepaid meter firmware + bench tools.  `make demo` and `make test` set up on their own.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test lint mpy-check soak bench flash clean help pico pico-setup pico-maybe pico-campaign

help:
	@echo "make setup   - create .venv and install host tools + test deps"
	@echo "make demo    - emulated meter: top up over serial, drain, relay opens, top up, recloses"
	@echo "make test    - lint + unit, MicroPython and HIL tests (< 10 min; HIL on the 32-bit VM at"
	@echo "               hil.env.VM32_HEAP when ../shared/micropython32 is there, else on the wheel at 190k)"
	@echo "make lint    - mpy-cross check of device code, ruff check of host code"
	@echo "make soak    - long campaigns (marked slow)"
	@echo "make bench   - print benchmark figures"
	@echo "make pico    - the HIL suite's e2e tests + PicoRig campaign on the real MicroPython rp2 port"
	@echo "             in rp2040js (needs node; npm ci in hil/pico; the UF2 in ../shared/rp2emu or"
	@echo "             METER_PICO_UF2=FILE)"
	@echo "make pico-campaign - the 100-cut PicoRig power-cut campaign alone (CI; ~11 min)"
	@echo "make flash BOARD=esp32|rp2040 PORT=/dev/ttyUSB0 SERIAL=PPM0000123 SGC=123456 - flash + provision"
	@echo "             a meter (SGC: the STS supply group code; needed on a meter's first flash unless"
	@echo "             the keystore's defaults.sgc holds it; KEYSTORE=FILE, FLASH_ARGS=... pass through)"

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(STAMP)

mpy-check: $(STAMP)
	$(BIN)/python -m host_tools.build --check

# host code: ruff with the rules in pyproject [tool.ruff]
LINT_PATHS ?= host_tools hil tests bench examples

lint: mpy-check
	$(BIN)/ruff check $(LINT_PATHS)

# issue 17: the HIL tier runs on the 32-bit VM (../shared/micropython32/bin/micropython-32 beside
# the checkout) at hil.env.VM32_HEAP (ESP32's 56 KiB starting heap, docs/MEMORY.md) when it
# is there, else on the 64-bit wheel at
# 190k with one notice line (hil.pytest_plugin --vm32; METER_VM32=PATH names the VM elsewhere,
# e.g. from a git worktree). HIL_ARGS= runs the wheel at 190k.
HIL_ARGS ?= --vm32

# pytest-xdist: two workers per core (XDIST=N for another count), each with its own tmp dirs, ptys
# and state dirs; the HIL tests mostly wait on their meters (on 2 cores: 8 min 48 s with -n 2,
# 4 min 6 s with -n 4, measured); the controller builds the firmware image once before the workers
XDIST ?= $(shell echo $$(( $$(nproc) * 2 )))
test: $(STAMP) lint pico-maybe
	$(BIN)/python -m pytest -q -n $(XDIST) -m "not slow" $(HIL_ARGS) $(PYTEST_ARGS)

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow and not pico_campaign" $(PYTEST_ARGS)

hil/pico/node_modules/.package-lock.json: hil/pico/package-lock.json
	cd hil/pico && npm ci --no-audit --no-fund

pico-setup: hil/pico/node_modules/.package-lock.json

# make test: PicoRig's rp2040js when Node.js is there (its tests skip with one line otherwise)
pico-maybe:
	@if command -v npm >/dev/null; then $(MAKE) -s pico-setup || echo "make: npm ci in hil/pico failed: PicoRig tests will skip"; \
	else echo "make: no Node.js/npm: PicoRig tests will skip"; fi

PICO_TESTS ?= tests/hil/test_picorig.py tests/hil/test_picorig_heap.py tests/hil/test_picorig_gurux.py \
	tests/hil/test_picorig_campaign.py tests/hil/test_e2e_meter.py tests/hil/test_e2e_tokens.py
# --hil-timeout: test_e2e_tokens enters 900 tokens one by one (~0.4 s each in rp2040js)
pico: $(STAMP) pico-setup
	$(BIN)/python -m pytest -q -s --rig pico --hil-timeout 1200 $(PICO_TESTS) $(PYTEST_ARGS)

# CI: the 100-cut PicoRig campaign alone (one summary line; PICO_CAMPAIGN_CUTS=N for more)
pico-campaign: $(STAMP) pico-setup
	$(BIN)/python -m pytest -q -s -m pico_campaign -k "not _short" tests/hil/test_picorig_campaign.py $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m host_tools.demo

bench: $(STAMP)
	@rc=0; for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || { echo "== $$f FAILED"; rc=1; }; done; exit $$rc

BOARD ?= esp32
flash: $(STAMP)
	@test -n "$(BOARD)" || { echo "make flash: BOARD= is empty: esp32 or rp2040"; exit 2; }
	@test -n "$(PORT)" || { echo "make flash: give PORT=/dev/ttyUSB0 SERIAL=PPM0000123 (and SGC=...)"; exit 2; }
	@test -n "$(SERIAL)" || { echo "make flash: give SERIAL=PPM0000123 (the meter's serial number)"; exit 2; }
	METERCTL_VIA_MAKE=1 $(BIN)/meterctl flash --board $(BOARD) --port $(PORT) --serial $(SERIAL) $(if $(SGC),--sgc $(SGC)) \
		$(if $(KEYSTORE),--keystore $(KEYSTORE)) $(FLASH_ARGS)

clean:
	rm -rf build .pytest_cache .hypothesis
