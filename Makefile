# Two commands do all set-up: `make demo` (the main job on a shipped model)
# and `make test` (the default test suite). Both create the virtualenv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 2

$(VENV)/.installed: setup.py constraints.txt
	python3.11 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[test,eval]'
	touch $@

.PHONY: install demo test benchmark
install: $(VENV)/.installed

demo: install
	@mkdir -p build
	$(PYTHON) bin/compress.py --input=testdata/kodim23.png \
	    --output=build/kodim23.tlic --overwrite --metrics
	$(PYTHON) bin/decompress.py --input=build/kodim23.tlic \
	    --output=build/kodim23.png --overwrite --reference=testdata/kodim23.png

test: install
	$(PYTHON) -m pytest -q tests

benchmark: install
	$(PYTHON) -m pytest -q -m slow tests
