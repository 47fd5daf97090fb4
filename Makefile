# Two entry points (see README): `make demo` and `make test`. Both set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.koembed-installed
TORCH := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: setup demo test browser lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, and its CPU build: on Linux, PyPI's torch wheel is the multi-GB CUDA build. PyTorch's CPU
	# index is tried first (5 s timeout, no retries, its error hidden). Where that index is unreachable, the
	# plain pin comes from whatever index pip is configured with: the CPU build only where that index or a
	# --find-links folder serves one (as on the machine this was developed on), else PyPI's CUDA build; to
	# avoid that, install torch from $(TORCH_CPU_INDEX) (or a copy of it) before running make.
	$(BIN)/pip install -q --timeout 5 --retries 0 --index-url $(TORCH_CPU_INDEX) $(TORCH) 2>/dev/null \
		|| { echo "setup: no $(TORCH) from $(TORCH_CPU_INDEX) (unreachable?); using pip's configured index" >&2; \
		     $(BIN)/pip install -q $(TORCH); }
	# The extras the tests need: every one (the slim default install is tested in a venv of its own,
	# tests/test_slim_install.py).
	$(BIN)/pip install -q -e '.[dev,distill,parquet,scale,serve,kiwi,langchain,llamaindex,e5]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) browser
	$(BIN)/python -m ruff check koembed distill tests examples
	$(BIN)/python -m pytest -q

# The page test (tests/test_serve_browser.py) drives Debian's Chromium and needs a Korean font: installed here
# when running as root with apt-get, else that test skips and says why. Playwright's own browser download is
# not used (it fails offline).
browser:
	-@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { ! command -v chromium >/dev/null 2>&1 || [ -z "$$(fc-list :lang=ko 2>/dev/null)" ]; }; then \
	  echo "test: installing chromium and fonts-nanum for the browser test" >&2; \
	  apt-get install -y -q chromium fonts-nanum >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-nanum >/dev/null 2>&1; } || \
	  echo "test: could not install chromium; the browser test will be skipped" >&2; \
	fi

clean:
	rm -rf $(VENV) .cache .pytest_cache
