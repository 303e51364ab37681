# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONFIG ?= etc/appliance.conf
PYTEST_ARGS ?=
DEBS := sip-tester tshark openssh-client tmux stunnel4 baresip openssl curl wrk snmptrapd smitools postgresql

# The Debian package: what `make deb`, `make repo` and `make test-deb` need.
PKG_DEBS := debhelper dh-virtualenv python3-dev python3-venv lintian \
	apt-utils gnupg mmdebstrap zstd systemd openssh-client sip-tester
PKG_OUT ?= build/deb
PKG_REPO ?= build/repo

.PHONY: venv run test unit e2e debs bench bench-peers clean osmo-stp fuzz docs
.PHONY: deb repo test-deb pkg-debs

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q -c constraints.txt --config-settings editable_mode=compat -e '.[test,postgresql]'
	$(PY) -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $@

# The node in the foreground on an embedded FileStorage under var/, with the
# seeds' demo data provisioned on first start (shell/demo.cli).
run: venv var/admin_keys
	$(VENV)/bin/twistd --nodaemon --pidfile= appliance --config $(CONFIG)

# The keys that log in as operator admin in `make run`: yours.
var/admin_keys:
	mkdir -p var
	cat $$HOME/.ssh/*.pub > $@ 2>/dev/null || true
	@test -s $@ || echo "var/admin_keys is empty: put an OpenSSH public key in it to log in (ssh -p 2022 admin@127.0.0.1)"

# Debian packages the end-to-end tests drive as real peers (root only: CI is root).
debs:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: skipping apt-get of $(DEBS)"; fi

# osmo-stp 2.1 (Debian 13) for the SIGTRAN end-to-end tests, fetched once
# from Debian's package registry and extracted under .cache (nothing installed).
OSMO_STP_DIR ?= .cache/osmo-stp
osmo-stp: $(OSMO_STP_DIR)/root/usr/bin/osmo-stp
$(OSMO_STP_DIR)/root/usr/bin/osmo-stp:
	tests/e2e/osmo-stp.sh fetch $(OSMO_STP_DIR)

# As root (CI is root) the package test runs too, after the suite.
test: venv debs osmo-stp
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-deb; \
	else echo "not root: skipping make test-deb"; fi

unit: venv
	$(VENV)/bin/pytest -q -m 'not e2e' $(PYTEST_ARGS)

e2e: venv debs osmo-stp
	$(VENV)/bin/pytest -q -m e2e $(PYTEST_ARGS)

# Coverage-guided fuzzing (atheris) of every harness in fuzz/ for FUZZ_TIME
# seconds each, starting from its committed corpus; new inputs go to var/fuzz.
FUZZ_TIME ?= 60
fuzz: venv
	@for f in fuzz/*.py; do n=$$(basename $$f .py); mkdir -p var/fuzz/$$n; \
	  echo "== $$f ($(FUZZ_TIME) s)"; \
	  $(PY) $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 var/fuzz/$$n fuzz/corpus/$$n || exit 1; done

# The operators' command reference, generated from the command declarations.
docs: venv
	$(PY) -m appliance.shell.reference > docs/SHELL.md

bench: venv
	@for b in $(filter-out bench/bench_peers.py,$(wildcard bench/bench_*.py)); do echo "== $$b"; $(PY) $$b || exit 1; done

# Jasmin and Kamailio (../shared/anchors) and the node with the same load
# tools, one after the other; appends the table to bench/RESULTS.md.
# QUICK=1: a couple of minutes in all.
bench-peers: venv
	$(PIP) install -q -c constraints.txt 'py-spy>=0.4'
	$(PY) bench/bench_peers.py --write $(if $(QUICK),--quick)

# Debian packages building and testing the .deb need (root only).
pkg-debs:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(PKG_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: skipping apt-get of $(PKG_DEBS)"; fi

# appliance_<version>_<arch>.deb in $(PKG_OUT), from the checkout's files
# (dh-virtualenv, Debian's python3.11, the pinned constraints.txt).
deb: pkg-debs
	bash tests/package/build_deb.sh . $(PKG_OUT)

# A signed apt repository in $(PKG_REPO) with the package; its key is made
# once in build/repo-key.  Prints the sources line for it.
repo: deb
	bash tests/package/make_repo.sh $(PKG_REPO) build/repo-key $(PKG_OUT)/appliance_*.deb

# Build, lintian, then install from a signed repository into a throwaway
# Debian 12 root (mmdebstrap; its base is cached in ~/.cache), run it,
# upgrade it, purge it: tests/package/check_deb.py.
test-deb: venv pkg-debs deb
	$(PY) tests/package/check_deb.py --deb $(PKG_OUT)/appliance_*.deb

clean:
	rm -rf $(VENV) var build *.egg-info
