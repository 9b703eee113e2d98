# lazylab: two commands for a newcomer — `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SYSPKGS := zstd skopeo podman docker-registry fuse3 busybox-static uidmap debootstrap python3 python3.11 libpython3.11-stdlib
PYTEST_ARGS ?=

.PHONY: demo test lint bench venv sysdeps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the real-client tests and the FUSE store need (apt only when one is missing).
sysdeps:
	@bash scripts/install-sysdeps.sh $(SYSPKGS)

demo: venv
	$(VENV)/bin/lazylab demo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: venv sysdeps lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: venv sysdeps
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
