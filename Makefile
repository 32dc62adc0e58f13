# The two set-up commands: `make dev` runs the service, `make test` runs the whole suite.
# Both create .venv and install what they need on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU torch on disk here; on a GPU machine: make TORCH_SPEC='torch' dev (or a CUDA index).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.renderq-installed

.PHONY: dev test test-fast bench install chromium wrk

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch named on the same line, so the resolver never swaps it for another build
	$(PY) -m pip install -q "$(TORCH_SPEC)" -e '.[test]'
	touch $@

install: $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/renderq dev

test: $(STAMP) chromium
	$(VENV)/bin/pytest -q

# The playground's browser tests drive Debian's chromium (no browser download): installed here
# where missing and we may (root, apt-get); elsewhere install it yourself or set RENDERQ_TEST_CHROMIUM.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$RENDERQ_TEST_CHROMIUM" ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is missing and could not be installed: tests/test_playground_browser.py will fail"

# The fast tier only: no process started (under 90 s on 2 cores). `make test` runs both tiers.
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not integration"

BENCH_STAMP := $(VENV)/.renderq-bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q "$(TORCH_SPEC)" -e '.[test,bench]'
	touch $@

# The API load section drives wrk (Debian's package): installed here where missing and we may.
wrk:
	@command -v wrk >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk is missing and could not be installed: the api and keys sections will fail"

# Real-stack benchmarks (about 10 minutes); writes BENCHMARKS.md. `make bench BENCH_ARGS=--quick`.
bench: $(BENCH_STAMP) wrk
	$(PY) -m bench $(BENCH_ARGS)
