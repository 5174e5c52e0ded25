# voc_yolo: `make pipeline` to reproduce, `make test` to check, `make help` for the rest.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export WANDB_MODE ?= offline
export YOLO_AUTOINSTALL ?= false
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name voc_yolo --display-name "Python (voc_yolo)" >/dev/null
	@$(MAKE) --no-print-directory hooks
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install voc_yolo with its dev tools (once)

hooks: ## nbdev's git/jupyter hooks, plus a pre-commit hook that keeps notebooks clean
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  $(BIN)/nbdev_install_hooks >/dev/null; \
	  printf '#!/bin/bash\n# installed by make hooks: notebooks are committed clean (nbdev_clean)\n$(BIN)/nbdev_clean && git diff --quiet -- "*.ipynb" || { echo "nbdev_clean changed notebooks: review and git add them"; exit 1; }\n' > "$$(git rev-parse --git-dir)/hooks/pre-commit"; \
	  chmod +x "$$(git rev-parse --git-dir)/hooks/pre-commit"; fi

pipeline: install ## reproduce the whole pipeline (dvc repro)
	dvc repro

export: install ## notebooks -> voc_yolo/ (nbdev_export)
	nbdev_export

clean-nbs: install ## strip notebook outputs/metadata (nbdev_clean)
	nbdev_clean

readme: install ## nbs/index.ipynb -> README.md (no Quarto needed)
	python tools/make_readme.py

lint: install ## ruff over notebooks, tests and tools
	ruff check nbs tests tools

nbtest: install ## run the library notebooks' tests (nbdev_test)
	nbdev_test --n_workers 2

pytest: install ## integration and end-to-end tests, with line coverage of voc_yolo (subprocesses included)
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage python -m pytest -q -rs --durations=15 --cov=voc_yolo --cov-report=term

test: install browser prometheus lint nbtest pytest ## the full test suite

check-clean: install ## fail if nbdev_export or nbdev_clean would change a tracked file
	nbdev_export && nbdev_clean
	@git status --porcelain | grep . && { echo "nbdev_export/nbdev_clean changed or added files (above): run them and commit"; exit 1; } || true

bench-data: install ## VOC XML -> YOLO labels: voc_yolo vs an Ultralytics-style loop on 17,000 files
	python tests/bench_data.py --n 17000

bench-train: install ## train stage via DVC + papermill vs the plain `yolo train` CLI, same args, one run (~15 min)
	python tests/bench_train.py --epochs 12 --repeats 2

serve: install ## the inference service on http://127.0.0.1:8000: models/deploy as `deploy` (flags: make serve ARGS="--token t")
	voc-yolo serve $(ARGS)

bench-serve: install ## serving: in-process limit vs `voc-yolo serve` at 1/4/16 clients vs the seed pattern, at 128 and 640 px
	python tests/bench_serve.py
	python tests/bench_serve.py --imgsz 640

docs: install ## the nbdev docs site in _docs/ (needs Quarto: https://quarto.org/docs/get-started/)
	@command -v quarto >/dev/null || { echo "make docs needs Quarto, which is not installed: get it from https://quarto.org/docs/get-started/ (a .deb/.tar.gz; pip's quarto-cli downloads it at install time), then rerun"; exit 1; }
	nbdev_docs

prometheus: ## Prometheus and promtool for the monitoring tests and `make monitor` (Debian packages; needs root)
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else echo "install prometheus (sudo apt-get install prometheus) for the monitoring tests; they are skipped without it"; fi; }

monitor: install prometheus ## the service on :8000 and Prometheus on :9090 with deploy/alerts.yml (Ctrl-C stops both)
	@mkdir -p .cache/prometheus; \
	voc-yolo serve $(ARGS) & svc=$$!; \
	prometheus --config.file=deploy/prometheus.yml --storage.tsdb.path=.cache/prometheus --web.listen-address=127.0.0.1:9090 --log.level=warn & prom=$$!; \
	trap 'kill $$svc $$prom 2>/dev/null; wait' INT TERM EXIT; \
	echo "service http://127.0.0.1:8000  Prometheus http://127.0.0.1:9090 (alerts: /alerts); Ctrl-C stops both"; \
	wait $$svc $$prom

loadtest: install ## the loadtest stage by hand, 50 users for 5 minutes (LOADTEST_ARGS="--set users=20"); results in runs/loadtest/, not in metrics/
	voc-yolo loadtest --set users=50 --set spawn_rate=10 --set run_time=300 --set out_dir=runs/loadtest/locust \
	  --set metrics_path=runs/loadtest/serve.json --set history_csv=runs/loadtest/serve_history.csv --set drift_html=runs/loadtest/drift.html $(LOADTEST_ARGS)

browser: ## Chromium + chromedriver for the report's browser test (Debian packages; needs root)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "install chromium and chromium-driver (sudo apt-get install chromium chromium-driver) for the browser test"; fi; }

lab: install ## JupyterLab on the notebooks
	jupyter lab --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: help install hooks pipeline export clean-nbs readme lint nbtest pytest test check-clean bench-data bench-train serve bench-serve docs browser lab prometheus monitor loadtest
