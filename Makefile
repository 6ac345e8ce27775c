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

# Debian package (docs/packaging.md). `make deb-deps` needs the network once:
# Debian's build dependencies (as root) and NFStream's wheel from PyPI (checked
# against debian/nfstream.txt, kept in debian/wheels/); it does nothing when
# they are there. `make deb` then builds offline, with Debian's Python (a clean
# PATH: no pyenv shim, no virtualenv), into build/deb/, and cleans up after itself.
DEB_BUILD_DEPS := build-essential fakeroot debhelper dh-python pybuild-plugin-pyproject \
	python3-all python3-setuptools python3-wheel python3-typer python3-click python3-pip
DEB_PATH := /usr/sbin:/usr/bin:/sbin:/bin
DEB_OUT  := build/deb

.PHONY: deb deb-deps deb-check

deb-deps:
	@missing=""; for p in $(DEB_BUILD_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root, or install them)"; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@cpu=$$(dpkg-architecture -qDEB_HOST_GNU_CPU); \
	if ! ls debian/wheels/nfstream-*-manylinux*_$$cpu.whl >/dev/null 2>&1; then \
	  echo "fetching NFStream's wheel for $$cpu (debian/nfstream.txt)"; \
	  PATH=$(DEB_PATH) /usr/bin/python3 -m pip download --quiet --no-deps --only-binary :all: \
	    --require-hashes -r debian/nfstream.txt -d debian/wheels; \
	fi

deb: deb-deps
	env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV -u PYENV_VERSION PATH=$(DEB_PATH) \
	  dpkg-buildpackage -us -uc -b -tc
	@version=$$(dpkg-parsechangelog -SVersion); mkdir -p $(DEB_OUT); \
	for f in ../slips_$${version}_*.deb ../slips_$${version}_*.buildinfo ../slips_$${version}_*.changes; do \
	  mv "$$f" $(DEB_OUT)/; done; \
	ls -l $(DEB_OUT)/slips_$${version}_*.deb

# What CI shows: make deb, lintian, install, systemd-analyze verify, a smoke
# test as user slips, purge (as root; it installs and purges the package).
deb-check:
	bash packaging/ci/deb-check.sh

# Benchmarks (bench/run.py): end-to-end analyze of generated Zeek folders of 100k and
# 1M flows with all default modules, then the flowmeter against NFStream on a generated
# pcap. Inputs are written once to $(BENCH_DIR) and reused. Not part of `make check`.
BENCH_DIR   ?= /tmp/slips-bench
BENCH_SIZES ?= 100k 1M

.PHONY: bench

bench: venv
	$(BIN)/python bench/run.py $(BENCH_SIZES) --work $(BENCH_DIR) --flowmeter
