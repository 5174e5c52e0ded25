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
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): settings.ini setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -c constraints.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name voc_yolo --display-name "Python (voc_yolo)" >/dev/null
	@$(MAKE) --no-print-directory hooks
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install voc_yolo with its dev tools (once)

hooks: ## nbdev's git/jupyter hooks and the pre-commit hooks of .pre-commit-config.yaml
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  $(BIN)/nbdev_install_hooks >/dev/null; \
	  $(BIN)/pre-commit install >/dev/null; fi

lock: ## refresh constraints.txt from settings.ini alone (pip-compile; no pip configuration of this machine applies): Linux x86_64, CPython 3.11
	PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT= pip-compile --quiet --extra dev --extra serve --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --output-file constraints.txt setup.py

pipeline: install ## reproduce the whole pipeline (dvc repro)
	dvc repro

export: install ## notebooks -> voc_yolo/ (nbdev_export)
	nbdev_export

clean-nbs: install ## strip notebook outputs/metadata (nbdev_clean)
	nbdev_clean

readme: install ## nbs/index.ipynb -> README.md (no Quarto needed)
	python tools/make_readme.py

CHECKOV := .cache/checkov/bin/checkov
$(CHECKOV): # checkov pins much of its own stack: it lives in a venv of its own, out of the project's lock
	$(PYTHON) -m venv .cache/checkov && .cache/checkov/bin/pip install --quiet 'checkov==3.3.30'

KUBEVAL := .cache/kv/bin/kubernetes-validate
$(KUBEVAL): # offline Kubernetes schemas (bundled), in a venv of its own like checkov
	$(PYTHON) -m venv .cache/kv && .cache/kv/bin/pip install --quiet 'kubernetes-validate==1.37.0'

k8s-lint: $(KUBEVAL) $(CHECKOV) ## render deploy/k8s's overlays (kubectl kustomize, or kustomize), validate them offline against Kubernetes 1.32's schemas, checkov them
	@if ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null; then \
	  echo "k8s-lint: skipped: neither kubectl nor kustomize is installed to render the overlays (GitHub's runners have both)" >&2; \
	  exit 0; fi; \
	mkdir -p build/k8s; \
	for o in dev prod; do \
	  if command -v kubectl >/dev/null; then kubectl kustomize deploy/k8s/overlays/$$o; \
	  else kustomize build deploy/k8s/overlays/$$o; fi > build/k8s/$$o.yaml || exit 1; \
	  $(KUBEVAL) --strict -k 1.32.0 --quiet build/k8s/$$o.yaml || exit 1; echo "deploy/k8s/overlays/$$o: valid against Kubernetes 1.32"; done; \
	$(CHECKOV) -f build/k8s/dev.yaml -f build/k8s/prod.yaml --framework kubernetes --compact --quiet --skip-download

k8s-image: install ## point deploy/k8s's overlays at the serve image images.yaml pushed: make k8s-image DIGEST=sha256:<digest> [IMAGE=ghcr.io/<owner>/<repo>/serve]
	python tools/k8s_image.py "$(DIGEST)" $(if $(IMAGE),--image $(IMAGE))

lint: install shellcheck $(CHECKOV) k8s-lint ## every pre-commit hook (ruff, nbdev, hadolint, actionlint with shellcheck, YAML, whitespace); shellcheck over the scripts; checkov over deploy/ and .github/
	pre-commit run --all-files --show-diff-on-failure
	shellcheck tools/*.sh && shellcheck -s sh deploy/pip-secrets.sh
	$(CHECKOV) -d deploy -d .github --compact --quiet --skip-download

nbtest: install ## run the library notebooks' tests in their own kernels (nbdev_test; make test runs the same tests through pytest)
	@# the test cells' mkdtemp() scratch folders go to a private TMPDIR, removed whatever the outcome
	tmp=$$(mktemp -d -t nbtest-XXXXXX); trap 'rm -rf "$$tmp"' EXIT; TMPDIR=$$tmp nbdev_test --n_workers 2

pytest: install ## integration and end-to-end tests, with line coverage of voc_yolo (subprocesses included)
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage python -m pytest -q -rs --durations=15 --cov=voc_yolo --cov-report=term

test: install browser prometheus wrk haproxy peers lint pytest ## the full test suite: pytest runs every library notebook's tests too (against the exported package), and tests/test_docker.py

test-fast: install ## the quick loop: every notebook's tests and the unit-level tests (pytest -m "not slow"; no pipeline, no image)
	python -m pytest -q -m "not slow" --durations=10

check-clean: install ## fail if nbdev_export or nbdev_clean would change a tracked file
	nbdev_export && nbdev_clean
	@git status --porcelain | grep . && { echo "nbdev_export/nbdev_clean changed or added files (above): run them and commit"; exit 1; } || true

bench-data: install ## VOC XML -> YOLO labels: voc_yolo vs an Ultralytics-style loop on 17,000 files
	python benchmarks/bench_data.py --n 17000

bench-train: install ## train stage via DVC + papermill vs the plain `yolo train` CLI, same args, one run (~15 min)
	python benchmarks/bench_train.py --epochs 12 --repeats 2

bench-resume: install ## what exact resume costs per epoch: Ultralytics' trainer vs voc_yolo's, same data and params (~4 min)
	python benchmarks/bench_resume.py --epochs 3 --repeats 2

serve: install ## the inference service on http://127.0.0.1:8000: models/deploy as `deploy` (flags: make serve ARGS="--token t")
	voc-yolo serve $(ARGS)

bench-serve: install wrk peers ## serving with verdicts: CPU per image of `voc-yolo serve` vs in process, the seed pattern, LitServe, BentoML (1/4/16 clients; 128 and 640 px; ~30 min)
	python benchmarks/bench_serve.py
	python benchmarks/bench_serve.py --imgsz 640

PEERS := litserve==0.2.19 bentoml==1.4.40
peers: install ## LitServe and BentoML for make bench-serve, each in a venv of its own under .cache/peers (on top of .venv's packages)
	tools/peers.sh $(PEERS)

attacks: install ## hostile requests, one at a time, against `voc-yolo serve` on models/deploy: answer, peak RSS, worst /health latency
	python benchmarks/hostile.py battery --json runs/hostile/battery.json

faults: install ## store and replica faults one at a time over moto's S3 behind a fault proxy, predictions running: what is served, lost requests, /ready, peak RSS
	python benchmarks/faults.py --json runs/faults/faults.json

soak: install ## 5 minutes of valid predictions with every attack in rotation: failures, RSS growth, /health p99 (targets: 0, +15%, 100 ms)
	python benchmarks/hostile.py soak --seconds 300 --json runs/hostile/soak.json

fuzz: install ## the property tests of tests/test_fuzz.py with 4000 examples each (the suite runs 60)
	HYPOTHESIS_PROFILE=fuzz python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics

docs: install ## the nbdev docs site in _docs/ (needs Quarto: https://quarto.org/docs/get-started/)
	@command -v quarto >/dev/null || { echo "make docs needs Quarto, which is not installed: get it from https://quarto.org/docs/get-started/ (a .deb/.tar.gz; pip's quarto-cli downloads it at install time), then rerun"; exit 1; }
	nbdev_docs

bench-processes: install wrk ## serving: 1 vs 2 server processes on one port (--processes), same cores, wrk at 16 clients; the capacity model against Poisson arrivals (~2 min)
	python benchmarks/bench_processes.py

wrk: ## wrk, the load generator of make bench-serve (Debian/Ubuntu package; needs root or sudo); without it the benchmark uses its Python client
	@bash tools/system_deps.sh wrk

haproxy: ## HAProxy, the load balancer of the replica tests and deploy/compose.replicas.yaml (Debian/Ubuntu package; needs root or sudo)
	@bash tools/system_deps.sh haproxy

prometheus: ## Prometheus and promtool for the monitoring tests and `make monitor` (Debian/Ubuntu package; needs root or sudo)
	@bash tools/system_deps.sh prometheus

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

# Scaling out (README): DVC remotes, DVC's experiment queue, the GTO model registry, GPU runners
push: install ## dvc push --run-cache to the default DVC remote (REMOTE=name for another; README "Scaling out" adds one)
	voc-yolo push $(if $(REMOTE),-r $(REMOTE))

pull: install ## dvc pull --run-cache from the default DVC remote (REMOTE=name for another)
	voc-yolo pull $(if $(REMOTE),-r $(REMOTE))

SWEEP_JOBS ?= 1
sweep: install ## a grid through DVC's queue, then reports/experiments.html: make sweep ARGS="-S 'params/train.yaml:lr0=0.001,0.003,0.01' -S 'params/train.yaml:imgsz=128,160'"
	voc-yolo sweep -j $(SWEEP_JOBS) $(ARGS)

compare: install ## reports/experiments.html: every experiment of `dvc exp show`, side by side
	voc-yolo compare $(ARGS)

ARTIFACT ?= deploy
register: install ## a registry version (GTO tag deploy@v1.0.0): make register VERSION=v1.0.0 [ARTIFACT=best]; no VERSION: the next patch
	gto register $(ARTIFACT) $(if $(VERSION),--version $(VERSION))
	@echo "push that one tag, as GTO says above (not --tags: GitHub starts no workflow for more than 3 tags pushed at once)"

promote: install ## assign a stage (GTO tag deploy#prod#N; the deploy-model workflow ships it): make promote VERSION=v1.0.0 STAGE=prod
	@test -n "$(STAGE)" || { echo "make promote needs STAGE=<stage>, e.g. make promote VERSION=v1.0.0 STAGE=prod"; exit 2; }
	gto assign $(ARTIFACT) $(if $(VERSION),--version $(VERSION)) --stage $(STAGE)
	@echo "pushing that one tag, as GTO says above, starts .github/workflows/deploy-model.yaml (not --tags: GitHub starts no workflow for more than 3 tags pushed at once)"

GPU_WHEELS ?= .whl
GPU_PACKAGES := ultralytics ultralytics-thop ultralytics-platform polars polars-runtime-32
gpu-wheels: ## Python 3.12 wheels (locked versions) of what tools/gpu_check.sh needs beyond a PyTorch image, into $(GPU_WHEELS)/
	@mkdir -p $(GPU_WHEELS)
	for p in $(GPU_PACKAGES); do v=$$(grep -i "^$$p==" constraints.txt | cut -d= -f3); \
	  pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
	    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d $(GPU_WHEELS) "$$p==$$v"; done
	@du -sh $(GPU_WHEELS)

DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
BASE_IMAGE ?= python:3.11-slim-bookworm
WHEELS ?= index
IMAGE ?= voc-yolo/serve:latest
WHEELHOUSE := .cache/wheelhouse

wheelhouse: install ## the serve image's Python packages as wheels, pinned by constraints.txt (built on the host: images install them offline)
	rm -rf $(WHEELHOUSE) && pip wheel -q --wheel-dir $(WHEELHOUSE) -c constraints.txt '.[serve]'

docker-base: ## a minimal Debian 12 + Python 3.11 base image (124 MB) from Debian packages, for hosts that cannot pull one: then BASE_IMAGE=voc-yolo/base:bookworm
	@command -v mmdebstrap >/dev/null || { echo "make docker-base needs mmdebstrap (apt-get install mmdebstrap)"; exit 1; }
	mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --include=python3,python3-venv,libgomp1,ca-certificates \
	  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	  bookworm - | $(DOCKER) import --change 'CMD ["python3"]' - voc-yolo/base:bookworm

docker-serve: $(if $(filter wheelhouse,$(WHEELS)),wheelhouse) ## the serve image: packages from the index in a builder stage (WHEELS=wheelhouse: offline, from `make wheelhouse`); TARGET=serve-with-model bakes models/deploy in
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && set -x && \
	DOCKER_BUILDKIT=1 $(DOCKER) build $(if $(filter wheelhouse,$(WHEELS)),--network=none,$$(python tools/pip_secrets.py "$$tmp")) \
	  -f deploy/serve.Dockerfile --target $(or $(TARGET),serve) --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg WHEELS=$(WHEELS) -t $(IMAGE) .

test-docker: install ## only the container test: build the serve image, run it on the tiny pipeline's model (make test runs it too)
	python -m pytest -q -rs tests/test_docker.py

browser: ## a headless browser + driver for the report's browser test: Chrome where installed (GitHub's runners), else Debian's chromium
	@bash tools/system_deps.sh browser

system-deps: ## every system tool the full test suite needs (browser, Prometheus, wrk, shellcheck), detected or installed per platform
	@bash tools/system_deps.sh all

shellcheck: ## shellcheck, which actionlint runs over the workflows' scripts (Debian/Ubuntu package; needs root or sudo)
	@bash tools/system_deps.sh shellcheck

lab: install ## JupyterLab on the notebooks
	jupyter lab --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: system-deps shellcheck help install hooks pipeline export clean-nbs readme lint nbtest pytest test check-clean bench-data bench-train bench-resume serve bench-serve bench-processes wrk attacks soak faults fuzz docs browser lab prometheus haproxy k8s-lint k8s-image monitor loadtest lock wheelhouse docker-base docker-serve test-docker push pull sweep compare register promote gpu-wheels
