# Quick start: `make demo` (install + run on the embedded demo), `make test` (the test suite).
PY ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip
OUT ?= runs/demo

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU CI: constraints keep torch on the CPU wheel (an unpinned torch pulls a multi-GB CUDA build)
	$(PIP) install -q -c constraints-cpu.txt -e ".[dev]"
	# openai-whisper without triton (1 GB, GPU only); its other requirements come with [dev]
	$(PIP) install -q --no-deps "openai-whisper>=20240930"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/collect run --demo --out $(OUT)

test: install
	$(VENV)/bin/python -m pytest -q

.PHONY: install demo test
