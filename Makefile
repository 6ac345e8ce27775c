# The two entry points: `make demo` and `make test`. Both install what is
# missing first (Debian packages as root, then a virtualenv from pyproject.toml).
PYTHON  ?= /usr/bin/python3
VENV    ?= .venv
BIN     := $(VENV)/bin
APT_PKGS := redis-server python3-venv nfdump ieee-data
SAMPLE  := samples/demo.pcap

.PHONY: demo test lint check deps venv clean sample

deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root, or install them)"; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BIN)/.installed: pyproject.toml constraints/debian12.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/debian12.txt -e '.[dev]'
	touch $@

venv: deps $(BIN)/.installed

# Analyzes the bundled capture (scripts/make_demo_pcap.py) through a real
# slipsd (a private one when none runs) and prints what it found.
demo: venv
	@rm -rf slips_output/demo
	$(BIN)/slipsctl analyze $(SAMPLE) --output slips_output/demo
	@echo; echo "== slips_output/demo/alerts.log =="; cat slips_output/demo/alerts.log

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check slipsd slipsctl modules tests scripts bench
	$(BIN)/mypy

check: lint test

sample: venv
	$(BIN)/python scripts/make_demo_pcap.py
	$(BIN)/python scripts/make_demo_sample.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
