# LoadPilot. `make test` and `make sim` set up everything they need on first use (see tools/setup_host.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?=
BOARD ?= esp32_devkit
PYTEST_ARGS ?=
MICROPY_DIR ?=

.PHONY: setup test unit sim deploy bench firmware clean

setup:
	@bash tools/setup_host.sh

test: setup
	cd host_tests && ../$(PY) -m pytest -q $(PYTEST_ARGS)

unit: setup
	cd host_tests && ../$(PY) -m pytest -q unit $(PYTEST_ARGS)

sim: setup
	$(PY) tools/sim.py

deploy: setup
	@test -n "$(PORT)" || (echo "usage: make deploy PORT=/dev/ttyUSB0 [BOARD=esp32_devkit]"; exit 2)
	$(PY) tools/deploy.py --port $(PORT) --board $(BOARD)

# the frozen image (docs/firmware.md): the 32-bit unix port always, the ESP32 image where ESP-IDF is installed
firmware: setup
	$(PY) tools/firmware.py --board $(BOARD) --micropython-dir "$(MICROPY_DIR)"

bench: setup
	@for b in tools/bench/*.py; do case $$b in *_mp.py|*/bus.py|*/overload.py) continue;; esac; echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .pytest_cache host_tests/.pytest_cache
