# Offline HTR toolkit.  `make pipeline` and `make test` set themselves up first.
SHELL := /bin/bash
VENV := .venv
HTR := $(VENV)/bin/htr
PY := $(VENV)/bin/python
WORK ?= work
JOBS ?= 2
COPISTE ?= ../shared/data/copiste

.PHONY: setup test test-slow pipeline data copiste-data segment train lm decode report experiment-copiste copiste-interim experiment-copiste-line copiste-line-interim copiste-models copiste-next bench probe clean help finetune-bench copiste-segcrops copiste-synthlines copiste-pages copiste-default

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

setup:  ## virtual env, packages, KenLM lmplz/build_binary, fonts, text (idempotent)
	@bash scripts/setup.sh

test: setup  ## the default test suite (fast tests; what CI runs)
	$(VENV)/bin/pytest -q

test-slow: setup  ## the slow tests too
	$(VENV)/bin/pytest -q -m ""

data: setup  ## render the embedded synthetic data set into $(WORK)/synthetic
	$(HTR) prepare synthetic --out $(WORK)/synthetic --jobs $(JOBS)

copiste-data: setup  ## line manifests of the shared Copiste train/dev pages
	$(HTR) prepare alto:$(COPISTE)/train --out $(WORK)/copiste/train --jobs $(JOBS) --split train --writer-pattern '^((?:imp_)?wikitexte_[0-9]+)'
	$(HTR) prepare alto:$(COPISTE)/dev --out $(WORK)/copiste/dev --jobs $(JOBS) --split dev --writer-pattern '^((?:imp_)?wikitexte_[0-9]+)'

EXPERIMENT ?= configs/synthetic.toml
RUN := $(HTR) run $(EXPERIMENT)

pipeline: setup  ## the whole job on the embedded data set: data, segmentation, training, LM, decoding, report
	$(RUN) --report

segment: setup data  ## segment the test pages and score the segmentation
	$(RUN) --only segment,segment-eval,prepare

train: setup data  ## train every model variant of the experiment (resumable)
	$(RUN) --only train

lm: setup data  ## build the lexicon and the KenLM n-gram
	$(RUN) --only lm

decode: setup data  ## recognise, tune the LM weight, decode and score
	$(RUN) --only recognize,tune,decode,evaluate,page-eval,calibration

bench: setup  ## training/inference speed of each 2D-LSTM implementation and the CRNN -> reports/bench.json
	$(HTR) bench --out reports/bench.json

PROBE ?= baseline
PROBE_EPOCHS ?= 10
PROBE_FLAGS ?= --dropout-where all
probe: setup  ## one probe of a Copiste training recipe: make probe PROBE=name PROBE_FLAGS="htr train flags" -> reports/probes/
	@test -f work/copiste/train/manifest.jsonl || $(MAKE) copiste-data
	$(PY) scripts/probe.py $(PROBE) --epochs $(PROBE_EPOCHS) -- $(PROBE_FLAGS)

experiment-copiste: setup  ## the real-data experiment on ../shared/data/copiste (resumable: rerun to continue)
	$(HTR) run configs/copiste.toml --report

copiste-interim: setup  ## score and report the Copiste models as they are now (trains nothing)
	$(HTR) run configs/copiste.toml --interim --report

experiment-copiste-line: setup  ## the same experiment with the line reduction of the CTC loss and dropout 0.1/0.25/0.5 by layer, continuing the probes' kept models (resumable)
	$(HTR) run configs/copiste-line.toml --report

copiste-line-interim: setup  ## score and report copiste-line's models as they are now (trains nothing)
	$(HTR) run configs/copiste-line.toml --interim --report

COPISTE_DATA := Copiste d'un jour (Bibliothèque et Archives nationales du Québec, CC-BY 4.0): contemporary Québec French handwriting, 238 training pages of 186 writers (4,512 lines); dev = 33 pages of 26 other writers (618 lines).

# the shipped default (models/copiste/default): a variant, best (of the variants), or any model folder
# the default: an ensemble of three annealed CRNNs (two with 256 BLSTM cells): two weight-averaged over
# 6-7 further epochs (htr train --init ... --average-from 1), the 256-cell one then averaged again over 8
# epochs on the ground-truth lines plus the segmenter's crops of the training pages (make copiste-segcrops;
# the average of the first 7 kept), and a snapshot of it (6 more epochs from it, the rate restarted at 1e-3
# and cosine-annealed to 0: scripts/probe.py snap-lstm256-all);
# htr ensemble models/copiste-next/crnn-lstm256-plus-seg-swa models/copiste-next/crnn-all-synth-init-swa
# models/copiste-next/snap-lstm256-all --out models/copiste-next/ensemble-3-snap; with the LM
# weights tuned on dev for it (every LM decoder's), and the card's paragraph on it (what it is, its scores)
COPISTE_DEFAULT ?= models/copiste-next/ensemble-3-snap
COPISTE_TUNED ?= reports/decoding/tuned-ensemble-3-snap.json
COPISTE_DEFAULT_NOTE ?= configs/copiste-default.md
COPISTE_DEFAULT_FLAGS = --lm-variant dropout-all --default $(COPISTE_DEFAULT) $(if $(COPISTE_TUNED),--lm-tuned $(COPISTE_TUNED)) $(if $(COPISTE_DEFAULT_NOTE),--default-note $(COPISTE_DEFAULT_NOTE)) --card configs/copiste-card.toml
copiste-models: setup  ## copy the Copiste models, LM and a model card into models/copiste
	$(PY) scripts/export_models.py $(WORK)/experiments/copiste --out models/copiste $(COPISTE_DEFAULT_FLAGS) --data "$(COPISTE_DATA)"
copiste-default: setup  ## only make COPISTE_DEFAULT models/copiste/default (tuned weights, card) without the experiment folder
	$(PY) scripts/export_models.py --replace-default models/copiste $(COPISTE_DEFAULT_FLAGS)

SEG_TRAIN := $(WORK)/copiste/train-seg
copiste-segcrops: setup  ## the segmenter's own crops of the Copiste training pages with their ground-truth text; work/copiste/train-plus-seg = GT lines + crops (htr train --train)
	@test -f $(WORK)/copiste/train/manifest.jsonl || $(MAKE) copiste-data
	$(HTR) segment $(COPISTE)/train/*.jpg --out $(SEG_TRAIN)/pred --jobs 1
	$(HTR) prepare alto:$(SEG_TRAIN)/pred --out $(SEG_TRAIN)/lines --keep-empty --no-progress
	$(HTR) seg-crops --pred $(SEG_TRAIN)/lines/manifest.jsonl --gt $(WORK)/copiste/train/manifest.jsonl --out $(SEG_TRAIN) --combined $(WORK)/copiste/train-plus-seg

SYNTH_LINES ?= 20000
SYNTH_LINES_FLAGS ?=
copiste-synthlines: setup  ## SYNTH_LINES (20,000) rendered single lines (17 fonts) of the Copiste training text + wordfreq French words -> work/copiste/synth-lines, for pretraining (never dev text)
	@test -f $(WORK)/copiste/train/manifest.jsonl || $(MAKE) copiste-data
	$(HTR) prepare synthetic-lines:$(WORK)/copiste/train/manifest.jsonl --out $(WORK)/copiste/synth-lines --lines $(SYNTH_LINES) --jobs $(JOBS) $(SYNTH_LINES_FLAGS)

COPISTE_MODELS := $(WORK)/experiments/copiste/models
copiste-next:  ## save the best weights so far of each unfinished Copiste training into models/copiste-next (a fresh checkout continues from there)
	@for folder in $(COPISTE_MODELS)/*/; do variant=$$(basename $$folder); \
	  if [ -f $$folder/weights.pt ] && [ -f $$folder/metrics.json ]; then \
	    mkdir -p models/copiste-next/$$variant && \
	    cp $$folder/{model.json,weights.pt,metrics.json,metrics.csv,train_config.json} models/copiste-next/$$variant/ && \
	    echo "copiste-next: $$variant ($$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(f'{len(m)} epochs, best dev CER', min(r['dev_cer'] for r in m))" $$folder/metrics.json))"; fi; done

report: setup  ## write the report of the experiment
	$(HTR) report $(WORK)/experiments/synthetic

clean:  ## remove generated data (keeps the virtual env and tools)
	rm -rf $(WORK)

FT_NAME ?= default-lr3e-4-auglight-devnone
PAGES_MODEL ?= models/copiste/default
PAGES_NAME ?= default
PAGES_DECODER ?= greedy
PAGES_LM ?= models/copiste/lm
PAGES_DECODE = --decoder $(PAGES_DECODER) $(if $(filter greedy beam,$(PAGES_DECODER)),,--lm $(PAGES_LM))
DEV_SEG := $(WORK)/copiste/dev-seg
PAGES_OUT := $(WORK)/copiste/pages-$(PAGES_NAME)
copiste-pages: setup  ## page-level CER of PAGES_MODEL (decoded with PAGES_DECODER, greedy; an LM decoder reads PAGES_LM) on the Copiste dev pages: GT lines vs the segmenter's lines -> reports/pages/PAGES_NAME.json
	@test -f $(WORK)/copiste/dev/manifest.jsonl || $(MAKE) copiste-data
	@test -f $(DEV_SEG)/lines/manifest.jsonl || { $(HTR) segment $(COPISTE)/dev/*.jpg --out $(DEV_SEG)/pred --jobs $(JOBS) && \
	  $(HTR) prepare alto:$(DEV_SEG)/pred --out $(DEV_SEG)/lines --keep-empty --no-progress && \
	  $(HTR) segment-eval --pred $(DEV_SEG)/pred --gt $(COPISTE)/dev --out $(DEV_SEG)/segment-eval.json; }
	@mkdir -p $(PAGES_OUT) reports/pages
	$(HTR) recognize --model $(PAGES_MODEL) --manifest $(WORK)/copiste/dev/manifest.jsonl --out $(PAGES_OUT)/gt.npz
	$(HTR) recognize --model $(PAGES_MODEL) --manifest $(DEV_SEG)/lines/manifest.jsonl --out $(PAGES_OUT)/pred.npz
	$(HTR) decode $(PAGES_DECODE) --logits $(PAGES_OUT)/gt.npz --out $(PAGES_OUT)/gt.tsv
	$(HTR) decode $(PAGES_DECODE) --logits $(PAGES_OUT)/pred.npz --out $(PAGES_OUT)/pred.tsv
	$(HTR) page-eval --ref $(WORK)/copiste/dev/manifest.jsonl --hyp $(PAGES_OUT)/gt.tsv --seg-lines $(DEV_SEG)/lines/manifest.jsonl \
	  --seg-hyp $(PAGES_OUT)/pred.tsv --segment-eval $(DEV_SEG)/segment-eval.json --out reports/pages/$(PAGES_NAME).json --bootstrap 1000

FT_BASE ?= models/copiste/default
FT_MINUTES ?= 3
FT_DEV ?= none
FT_FLAGS ?= --lr 0.0003 --augment --patience 0 --scheduler none
finetune-bench: setup  ## fine-tune FT_BASE on Copiste dev's 7 first pages, greedy CER on their second pages -> reports/finetune/
	@test -f $(WORK)/copiste/dev/manifest.jsonl || $(MAKE) copiste-data
	$(PY) scripts/finetune_bench.py $(FT_NAME) --base $(FT_BASE) --manifest $(WORK)/copiste/dev/manifest.jsonl --max-minutes $(FT_MINUTES) --threads 2 --dev $(FT_DEV) -- $(FT_FLAGS)
