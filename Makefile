# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
# One torch thread per free core; on 2 shared cores more threads are far slower (see issue notes).
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test lint chromium bench world-model critic planner clean

setup: $(VENV)/.installed

# torch is installed first, pinned to the CPU wheel, so no later dependency pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/spiral demo --out out/demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# The bench report is checked by rendering it in headless Chromium (Debian's package).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: lint chromium
	$(PY) -m pytest

# The comparison scripts take what they compare (weights, bench runs), so they are run by hand.
COMPARE := benchmarks/compare_world_models.py benchmarks/bench_pool.py benchmarks/loop_failures.py
bench: setup
	for f in $(filter-out $(COMPARE),$(wildcard benchmarks/*.py)); do echo "== $$f"; $(PY) $$f || exit 1; done

# Re-create the shipped tabletop world model from scratch (data, training, install); see
# src/spiral/assets/tabletop_wm.md for what the shipped one took. Stage 3 trains on fresh simulator
# clips, rendered in a background process (--workers 1); stages 4 and 6 are GRPO; stages 5, 9, 10
# and 14 train on wider training wordings (numbered as in docs/RESULTS.md at tag results-diary,
# where the stages between were tried and not shipped). Every stage draws today's training
# wordings and trains the net as it ships, input gate included; the card's stages drew the
# narrower wordings of their day, and its stages 1 and 2 trained a net without the gate.
WM_STEPS ?= 11500
WM_ANNEAL ?= 6000
WM_FRESH ?= 16000
WM_FRESH_DECAY ?= 6000
world-model: setup
	$(VENV)/bin/spiral data make --world tabletop --episodes 3000 --seed 0 --failure-rate 0.1 --out data/tabletop-train
	$(VENV)/bin/spiral train world-model --data data/tabletop-train --out runs/world-model --steps $(WM_STEPS)
	$(VENV)/bin/spiral train world-model --data data/tabletop-train --out runs/world-model-anneal \
		--init runs/world-model/tabletop_wm.safetensors --steps $(WM_ANNEAL) --lr-decay $(WM_ANNEAL)
	$(VENV)/bin/spiral train world-model --out runs/world-model-gate --init runs/world-model-anneal/tabletop_wm.safetensors \
		--fresh 1 --workers 1 --lr 2e-4 --steps $(WM_FRESH) --lr-decay $(WM_FRESH_DECAY) --eval-every 2000
	$(VENV)/bin/spiral train grpo --weights runs/world-model-gate/tabletop_wm.safetensors --out runs/world-model-grpo \
		--iterations 20 --schedule 1:0,2:40,3:70 --lr 3e-5 --updates 2 --guidance 1 --probes 64 --eval-every 10 --threads 1
	$(VENV)/bin/spiral train world-model --out runs/world-model-wordings --init runs/world-model-grpo/tabletop_wm.safetensors \
		--fresh 1 --workers 1 --lr 1e-4 --steps 4500 --lr-decay 4500 --eval-every 0
	$(VENV)/bin/spiral train grpo --weights runs/world-model-wordings/tabletop_wm.safetensors --out runs/world-model-grpo2 \
		--iterations 20 --schedule 1:0 --lr 3e-5 --updates 2 --guidance 1 --probes 64 --eval-every 10 --threads 2
	$(VENV)/bin/spiral train world-model --out runs/world-model-wordings2 --init runs/world-model-grpo2/tabletop_wm.best.safetensors \
		--fresh 1 --workers 1 --lr 1e-4 --steps 2000 --lr-decay 2000 --eval-every 0
	$(VENV)/bin/spiral train world-model --out runs/world-model-wordings3 --init runs/world-model-wordings2/tabletop_wm.safetensors \
		--fresh 1 --workers 1 --lr 1e-4 --steps 3000 --lr-decay 3000 --eval-every 0
	$(VENV)/bin/spiral train world-model --out runs/world-model-verbs --init runs/world-model-wordings3/tabletop_wm.safetensors \
		--fresh 1 --workers 1 --lr 1e-4 --steps 3000 --lr-decay 3000 --eval-every 0
	cp runs/world-model-verbs/tabletop_wm.safetensors src/spiral/assets/tabletop_wm.safetensors

# Re-create the learned tabletop critic (makes the datasets it needs; rolls out world-model stage 10,
# whose rollouts the shipped critic was trained on, taken from git: the shipped world model is stage 14
# since then; see the critic's card).
WM_STAGE10_COMMIT ?= fa6baa2
critic: setup
	$(VENV)/bin/spiral data make --world tabletop --episodes 3000 --seed 0 --failure-rate 0.1 --out data/tabletop-train
	$(VENV)/bin/spiral data make --world tabletop --episodes 800 --seed 7 --failure-rate 0.6 --out data/critic-train
	mkdir -p runs && git show $(WM_STAGE10_COMMIT):src/spiral/assets/tabletop_wm.safetensors > runs/wm-stage10.safetensors
	$(VENV)/bin/spiral train critic --out runs/critic --world-model runs/wm-stage10.safetensors
	cp runs/critic/tabletop_critic.safetensors src/spiral/assets/tabletop_critic.safetensors

# Re-create the lm planner's adapter (LoRA on Gemma 3 270M; see src/spiral/assets/tabletop_planner.md for
# what the shipped one took). Resumable: rerun the same command after an interruption.
PLANNER_STEPS ?= 1200
planner: setup
	OMP_NUM_THREADS=2 $(VENV)/bin/spiral train planner --out runs/planner --steps $(PLANNER_STEPS)
	cp runs/planner/tabletop_planner.safetensors src/spiral/assets/tabletop_planner.safetensors

clean:
	rm -rf $(VENV) out
