# The two commands of the README: `make demo` (serve on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lmgate serve --config examples/demo.yaml --port 8100

test: $(STAMP)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	bench/run

clean:
	rm -rf $(VENV) *.egg-info lmgate.db lmgate.db-wal lmgate.db-shm
