# Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#
#   make demo   system tools, a virtual environment .venv with torch and this project,
#               then a render of the example catalogue (questions/triage.yaml)
#   make test   the same plus the test extras and the browser-test packages, then
#               ruff check, ruff format --check, mypy and the README's test command
#
# Each install step leaves a stamp in .venv/.stamps/ and reruns only when
# pyproject.toml changes (the project is installed editable, so edits to src/
# need no reinstall); the system-tool checks are a few `command -v` calls.
# `make clean-venv` starts over. Nothing here needs root except apt-get, which
# runs through sudo when you are not root.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := $(VENV)/.stamps
TORCH_VERSION := 2.13.0
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
# The browser tests check that Chinese renders with real glyphs.
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

.PHONY: help demo test lint typecheck apt-demo apt-test clean-venv

help:
	@echo "make demo   install (apt tools, .venv, torch, the project) and render questions/triage.yaml"
	@echo "make test   install the test extras too, then ruff, mypy and python3 -m pytest -q"
	@echo "make clean-venv   remove .venv (the next make reinstalls)"

demo: apt-demo $(STAMPS)/project
	$(VENV)/bin/avatar-batch render questions/triage.yaml
	@echo "open output/triage/index.html in a browser, or: $(VENV)/bin/avatar-batch serve output/triage"

test: apt-test $(STAMPS)/test-extras lint typecheck
	source $(VENV)/bin/activate && python3 -m pytest -q

lint: $(STAMPS)/test-extras
	$(PY) -m ruff check
	$(PY) -m ruff format --check

typecheck: $(STAMPS)/test-extras
	$(PY) -m mypy

# --- system packages (checked every time: cheap, and never stale) ------------------

apt-demo:
	@missing=""; \
	for program in ffmpeg ffprobe espeak-ng; do command -v $$program >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing ffmpeg espeak-ng"; $(SUDO) apt-get update -qq; $(APT_INSTALL) ffmpeg espeak-ng; \
	fi

apt-test: apt-demo
	@missing=""; \
	for program in chromium chromedriver; do command -v $$program >/dev/null || missing=yes; done; \
	[ -e $(CJK_FONT) ] || missing=yes; \
	if [ -n "$$missing" ]; then \
	  echo "installing chromium chromium-driver fonts-noto-cjk"; $(SUDO) apt-get update -qq; \
	  $(APT_INSTALL) chromium chromium-driver fonts-noto-cjk; \
	fi

# --- the virtual environment ---------------------------------------------------------

# --system-site-packages: a CUDA build of torch already installed on a GPU machine
# is used as it is, not replaced by a CPU download.
$(PY):
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || { \
	  echo "installing python3-venv"; $(SUDO) apt-get update -qq; $(APT_INSTALL) python3-venv; }
	$(PYTHON) -m venv --system-site-packages $(VENV)
	@mkdir -p $(STAMPS)

$(STAMPS)/torch: | $(PY)
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then \
	  echo "using the CUDA build of torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	else \
	  $(PIP) install -q $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION); \
	fi
	@mkdir -p $(@D) && touch $@

$(STAMPS)/project: pyproject.toml $(STAMPS)/torch
	$(PIP) install -q -e ".[runner]"
	@mkdir -p $(@D) && touch $@

$(STAMPS)/test-extras: pyproject.toml $(STAMPS)/project
	$(PIP) install -q -e ".[runner,test]"
	@mkdir -p $(@D) && touch $@

clean-venv:
	rm -rf $(VENV)
