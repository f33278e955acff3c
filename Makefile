# Two commands do all set-up: `make demo` (the main job on a shipped model)
# and `make test` (the default test suite). Both create the virtualenv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

$(VENV)/.installed: setup.py constraints.txt
	python3.11 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[test,eval]'
	touch $@

# A second environment with the newest tensorflow-cpu on Python 3.12 and
# neither tfc nor this package: tests/test_cross_stack.py runs the shipped
# SavedModel in it (any TF loads it, and codes the same bytes).
NEWEST_TF_VENV ?= .venv-newest-tf
PYTHON312 ?= $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.12.*/bin/python3.12 \
    2>/dev/null | tail -1 || command -v python3.12)
# (Without this checkout on PYTHONPATH: that environment has no tfc_lic.)
$(NEWEST_TF_VENV)/.installed:
	$(or $(PYTHON312),python3.12) -m venv $(NEWEST_TF_VENV)
	env -u PYTHONPATH $(NEWEST_TF_VENV)/bin/python -m pip install --quiet \
	    --upgrade pip
	env -u PYTHONPATH $(NEWEST_TF_VENV)/bin/python -m pip install --quiet \
	    tensorflow-cpu pillow
	touch $@

.PHONY: install newest-tf demo test benchmark
install: $(VENV)/.installed
newest-tf: $(NEWEST_TF_VENV)/.installed

demo: install
	@mkdir -p build
	$(VENV)/bin/tfc-lic-compress --input=testdata/kodim23.png \
	    --output=build/kodim23.tlic --overwrite --metrics
	$(VENV)/bin/tfc-lic-decompress --input=build/kodim23.tlic \
	    --output=build/kodim23.png --overwrite --reference=testdata/kodim23.png

# One worker per core (tests spend much of their time in one thread: imports,
# tracing, subprocess start-up). A file's tests stay in one worker, so its
# module fixtures are built once (spreading them by test measured slower:
# multi-process tests overlapped and fixtures were rebuilt).
test: install newest-tf
	$(PYTHON) -m pytest -q -n auto --dist loadfile tests

benchmark: install
	$(PYTHON) -m pytest -q -m slow tests

# The shipped zoo, one reproducible command per step: stage 1 (resumes, or
# continues checkpoints/ on a fresh machine), stage 2 from it, then export:
# stage-1 float16 weights + history to checkpoints/ (what training continues
# from) and the stage-2 SavedModels (full + core) to saved_models/.
RUNS ?= $(HOME)/runs
# The export's quantizer settings are the library's (tfc_lic/settings.py);
# QUANTIZER_FLAGS="--tcq_lambda=..." overrides them for an experiment.
QUANTIZER_FLAGS ?=
.PHONY: zoo-mbt2018-mean-vr train-mbt2018-mean-vr finetune-mbt2018-mean-vr \
    milestone-mbt2018-mean-vr export-mbt2018-mean-vr evaluate-mbt2018-mean-vr
zoo-mbt2018-mean-vr: train-mbt2018-mean-vr finetune-mbt2018-mean-vr \
    export-mbt2018-mean-vr
# STAGE1_FLAGS="--steps=6800 --decay_start=0.9265" anneals the learning rate
# into a milestone (how v3 ended); without it the run follows the config.
STAGE1_FLAGS ?=
train-mbt2018-mean-vr: install
	$(VENV)/bin/tfc-lic-train --flagfile=configs/mbt2018-mean-vr.cfg \
	    --train_dir=$(RUNS)/mbt2018-mean-vr \
	    --continue_from=checkpoints/mbt2018-mean-vr-stage1 $(STAGE1_FLAGS)
# Commit-sized stage-1 weights + history of the run, ahead of the zoo: where
# training continues on a machine without the run directory.
milestone-mbt2018-mean-vr: install
	$(VENV)/bin/tfc-lic-export --run=$(RUNS)/mbt2018-mean-vr \
	    --compact_dir=checkpoints/mbt2018-mean-vr-stage1
finetune-mbt2018-mean-vr: install  # redone from scratch on the current stage 1
	rm -rf $(RUNS)/mbt2018-mean-vr-stage2
	$(VENV)/bin/tfc-lic-finetune --flagfile=configs/mbt2018-mean-vr-stage2.cfg \
	    --run=$(RUNS)/mbt2018-mean-vr --train_dir=$(RUNS)/mbt2018-mean-vr-stage2
export-mbt2018-mean-vr: install milestone-mbt2018-mean-vr
	$(VENV)/bin/tfc-lic-export --run=$(RUNS)/mbt2018-mean-vr \
	    --compact_dir=checkpoints/mbt2018-mean-vr
	cp $(RUNS)/mbt2018-mean-vr-stage2/history.jsonl \
	    checkpoints/mbt2018-mean-vr/stage2-history.jsonl
	$(VENV)/bin/tfc-lic-export --run=$(RUNS)/mbt2018-mean-vr-stage2 \
	    --name=mbt2018-mean-vr --version=$(VERSION) \
	    $(QUANTIZER_FLAGS)

# Kodak RD of export $(VERSION), added to the previous export's results
# (docs/results.md): USQ and TCQ-8, then TCQ-8 and USQ with 30
# refinement steps, each run extending the saved one before it, into
# results/kodak-v$(VERSION). The export is evaluated under the alias
# mbt2018-mean-vr-v$(VERSION) (removed afterwards) so that its curves keep
# their names beside older versions'.
KODAK ?= ../shared/data/kodak
PREVIOUS ?= $(shell echo $$(($(VERSION) - 1)))
ALIAS = mbt2018-mean-vr-v$(VERSION)
EVALUATE = $(VENV)/bin/tfc-lic-evaluate --images=$(KODAK) \
    --reference=results/reference/kodak.json --overwrite
evaluate-mbt2018-mean-vr: install
	ln -sfn mbt2018-mean-vr saved_models/$(ALIAS) && \
	trap 'rm -f saved_models/$(ALIAS)' EXIT && \
	$(EVALUATE) --results=results/kodak-v$(PREVIOUS)/rd.json \
	    --add_codecs=$(ALIAS):usq,$(ALIAS):tcq8 \
	    --output_dir=$(RUNS)/eval-v$(VERSION)/plain && \
	$(EVALUATE) --results=$(RUNS)/eval-v$(VERSION)/plain/rd.json \
	    --add_codecs=$(ALIAS):tcq8+refine30 \
	    --output_dir=$(RUNS)/eval-v$(VERSION)/tcq8-refine && \
	$(EVALUATE) --results=$(RUNS)/eval-v$(VERSION)/tcq8-refine/rd.json \
	    --add_codecs=$(ALIAS):usq+refine30 --plot_max_bpp=1 \
	    --plot='jpeg,webp,avif,heif-*,$(ALIAS)*,mbt2018-mean-vr-v$(PREVIOUS):tcq8+refine30,mbt2018-mean (CompressAI),bmshj2018-hyperprior (paper)' \
	    --output_dir=results/kodak-v$(VERSION)
