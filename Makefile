# disco: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
DISCO := $(VENV)/bin/disco
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# TensorFlow's C++ start-up chatter hides the progress users need to see.
export TF_CPP_MIN_LOG_LEVEL ?= 2

DEMO_DATA ?= data/demo/openmic-2018
DEMO_CLIPS ?= 200
SEED ?= 2018
RUN_ID ?= $(shell date +%Y%m%d-%H%M%S)

# Images and clusters
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' disco/__init__.py)
# -dirty as disco.images.git_sha: a changed or new (not ignored) file gives the images another tag.
GIT_SHA := $(shell sha=$$(git rev-parse --short=12 HEAD 2>/dev/null) || sha=nogit; \
	[ "$$sha" = nogit ] || [ -z "$$(git status --porcelain 2>/dev/null)" ] || sha=$$sha-dirty; echo $$sha)
TAG ?= $(VERSION)-$(GIT_SHA)
REGISTRY ?= localhost/disco
BASE_IMAGE ?= python:3.11-slim-bookworm
KIND_CLUSTER ?= disco
# The kfp SDK's own variable, if set, is the default endpoint.
KFP_ENDPOINT ?= $(or $(KF_PIPELINES_ENDPOINT),http://localhost:8080)
KFP_EXPERIMENT ?= disco
PIPELINE_YAML ?= pipelines/disco-openmic.yaml
PIPELINE_YAML_VERTEX ?= pipelines/disco-openmic-vertex.yaml
# The dataset as the cluster sees it (gs://… on GKE / Vertex; any URI the pods can read on kind).
DATA_URI ?=
VERTEX_PROJECT ?=
VERTEX_REGION ?= us-central1
VERTEX_PIPELINE_ROOT ?=

.PHONY: help
help: ## List every target with a one-line description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=68,<81" wheel

.PHONY: setup
setup: $(PY) ## Create .venv and install disco, its extras (dev, cluster, demo, tune, dask), pinned (requirements/constraints.txt)
	$(PIP) install --progress-bar off -c requirements/constraints.txt -e ".[dev,cluster,demo,tune,dask]"
	$(PIP) install --progress-bar off --no-deps -r requirements/nodeps.txt -r requirements/nodeps-demo.txt
	@$(DISCO) --version

.PHONY: test
test: ## Run the whole test suite (what CI runs)
	$(PY) -m pytest -v --durations=25

.PHONY: test-fast
test-fast: ## Run the tests not marked slow
	$(PY) -m pytest -m "not slow" -q

.PHONY: demo-data
demo-data: ## Generate the offline demo dataset (OpenMIC format, SoundFont-rendered) if absent
	@if [ -f $(DEMO_DATA)/openmic-2018-aggregated-labels.csv ]; then \
	  echo "demo dataset present: $(DEMO_DATA)"; \
	else \
	  $(DISCO) demo-data --out $(DEMO_DATA) --clips $(DEMO_CLIPS) --seed $(SEED); \
	fi

.PHONY: demo
demo: demo-data ## The main job: run the whole pipeline locally (kfp.local) on the demo dataset
	$(DISCO) run --data $(DEMO_DATA) --output-dir runs/demo-$(RUN_ID) --embedder musicnn --seed $(SEED) \
	  --preset demo

.PHONY: compile
compile: ## Compile the pipeline for open-source KFP ($(PIPELINE_YAML)) and Vertex AI ($(PIPELINE_YAML_VERTEX))
	$(DISCO) compile --target kfp --output $(PIPELINE_YAML)
	$(DISCO) compile --target vertex --output $(PIPELINE_YAML_VERTEX)

.PHONY: lint
lint: ## ruff (lint + format check), import layers (import-linter), Dockerfiles (hadolint), Kubernetes manifests
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests/test_dockerfiles.py tests/test_k8s_manifests.py

.PHONY: format
format: ## Format and fix imports with ruff
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

.PHONY: bench-resample
bench-resample: ## Benchmark: disco resample vs a serial librosa.load loop (clips/s, ratio)
	$(PY) bench/bench_resample.py

.PHONY: bench-embed
bench-embed: ## Benchmark: embedder model-only vs end-to-end vs serial baseline, peak memory
	$(PY) bench/bench_embed.py

.PHONY: bench-scale
bench-scale: ## Benchmark: whole pipeline at N and 4N demo clips; per-step time, clips/s, peak memory, 20k projection
	$(PY) bench/bench_scale.py

.PHONY: bench-quality
bench-quality: ## Benchmark: presets and ideas on real VGGish features (audioset-music20-dev, 3 seeds), then the demo
	$(PY) bench/bench_quality.py

.PHONY: bench-ideas
bench-ideas: ## Benchmark: ideas from the field on the default's network (noise, attention heads, transformer, ...), 3 seeds
	$(PY) bench/bench_ideas.py

.PHONY: build-images
build-images: ## Build the base and per-step images (Docker SDK if a daemon is reachable, else buildah)
	$(PY) -m disco.images build --tag $(TAG) --registry $(REGISTRY) --base-image $(BASE_IMAGE)

.PHONY: push-images
push-images: ## Push the images to REGISTRY=...
	$(PY) -m disco.images push --tag $(TAG) --registry $(REGISTRY)

.PHONY: kind-up
kind-up: ## Create a kind cluster and install KFP standalone (pinned to 2.17)
	k8s/kind-up.sh $(KIND_CLUSTER)

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

.PHONY: kind-load-images
kind-load-images: ## Load the built images into the kind cluster
	$(PY) -m disco.images kind-load --tag $(TAG) --registry $(REGISTRY) --cluster $(KIND_CLUSTER)

.PHONY: ui
ui: ## Port-forward the KFP UI to http://localhost:8080
	kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80

# What a cluster runs is compiled against the images `make build-images` tagged (TAG, REGISTRY);
# the checked-in $(PIPELINE_YAML) keeps the version-only names so it stays a stable golden file.
SUBMIT_YAML ?= runs/pipelines/disco-openmic-$(TAG).yaml
VERTEX_SUBMIT_YAML ?= runs/pipelines/disco-openmic-vertex-$(TAG).yaml

.PHONY: compile-submit
compile-submit: ## Compile for KFP against the built images (REGISTRY/…:TAG) to $(SUBMIT_YAML)
	@mkdir -p $(dir $(SUBMIT_YAML))
	$(DISCO) compile --target kfp --output $(SUBMIT_YAML) --registry $(REGISTRY) --tag $(TAG) $(COMPILE_ARGS)

.PHONY: compile-vertex-submit
compile-vertex-submit: ## Compile for Vertex AI against the built images to $(VERTEX_SUBMIT_YAML)
	@mkdir -p $(dir $(VERTEX_SUBMIT_YAML))
	$(DISCO) compile --target vertex --output $(VERTEX_SUBMIT_YAML) --registry $(REGISTRY) --tag $(TAG) $(COMPILE_ARGS)

.PHONY: require-data-uri
require-data-uri:
	@test -n "$(DATA_URI)" || { echo "set DATA_URI=<dataset URI the cluster can read, e.g. gs://bucket/openmic-2018-v1.0.0.tgz>" >&2; exit 2; }

.PHONY: submit
submit: require-data-uri compile-submit ## Submit the pipeline to KFP_ENDPOINT (kfp run create semantics); needs DATA_URI
	$(DISCO) submit --endpoint $(KFP_ENDPOINT) --experiment $(KFP_EXPERIMENT) --package $(SUBMIT_YAML) \
	  --data $(DATA_URI)

.PHONY: vertex-submit
vertex-submit: require-data-uri compile-vertex-submit ## Submit the Vertex-compiled pipeline to Vertex AI Pipelines; needs DATA_URI
	$(DISCO) vertex-submit --project $(VERTEX_PROJECT) --region $(VERTEX_REGION) \
	  --pipeline-root $(VERTEX_PIPELINE_ROOT) --package $(VERTEX_SUBMIT_YAML) \
	  --data $(DATA_URI)

.PHONY: clean
clean: ## Remove run outputs and caches (keeps .venv and data/)
	rm -rf runs/ .pytest_cache build/ *.egg-info
