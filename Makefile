# LLMs from Zero: build the book and run the tests.
#   make book   install everything into .venv and build the site (execution cached)
#   make test   install everything and run the test suite (builds the site first; the tests
#               run on every core, each test file in one worker: pytest-xdist's loadfile)
#   make preflight  check in seconds that every data set and model the chapters need is
#               available (book and test run it first, and stop with its summary if not)
#   make serve  serve the built site on http://127.0.0.1:8000
# Needs only Python 3.11+ (set PYTHON=python3.12 etc. to choose another).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_INDEX ?=
# LATEST=1 installs the newest release of every dependency instead of the pins
# (the weekly CI job uses it to find version drift before readers do).
LATEST ?=
BUILD  := _build/html
REQS   := $(if $(LATEST),_build/requirements-latest.txt,requirements.txt)

.PHONY: install preflight book book-ci test serve lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet $(if $(LATEST),--upgrade torch,torch==2.13.0) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	@mkdir -p _build && sed -E 's/^(torch)==.*$$//; s/==[^ ;#]+//' requirements.txt > _build/requirements-latest.txt
	$(BIN)/pip install --quiet $(if $(LATEST),--upgrade) -r $(REQS)
	$(BIN)/pip install --quiet --no-deps -e .

# Every asset the chapters load (offline folder, cache, installed package, or a source that
# answers), checked before a long build; on failure it prints what is missing and how to fix it.
preflight: install
	$(BIN)/python -m llmzero.data.assets preflight

# Execution is cached in _build/.jupyter_cache: only changed notebooks re-run.
book: preflight
	$(BIN)/python -m llmzero.book.build --no-preflight
	@echo
	@echo "The book is at $(CURDIR)/$(BUILD)/index.html"
	@echo "Serve it with: make serve   (then open http://127.0.0.1:8000)"

# What CI runs: every notebook re-executed, in parallel, warnings are errors.
book-ci: preflight
	$(BIN)/python -m llmzero.book.build --force --no-preflight

test: preflight
	$(BIN)/python -m llmzero.book.build --force --no-preflight
	$(BIN)/python -m pytest -n auto --dist loadfile

serve:
	@test -f $(BUILD)/index.html || { echo "Build the book first: make book"; exit 1; }
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory $(BUILD)

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf _build
