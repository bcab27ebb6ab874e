# llm-sandbox: `make plan` renders an example department offline (needs only Go);
# `make test` installs the test tools at pinned versions and runs every check and test.

SHELL := /bin/bash
GO    ?= go
STACK ?= chemistry
BIN   := $(CURDIR)/bin
VENV  := $(CURDIR)/.cache/venv

# How every install step of `make test` is pinned, so that a run on any later day installs the
# same bytes (nothing is resolved at install time):
# - Go tools: `go install module@version`, verified against the Go checksum database; their own
#   dependencies come from that version's go.mod. Ollama and the Pulumi CLI: tools/*/go.mod and
#   go.sum.
# - Python packages: lock files that list the whole closure, each file with its SHA-256, installed
#   with `pip --require-hashes --no-deps` (spelled out on each pip line below). --no-deps matters: without it pip
#   resolves each `pkg[extra]` requirement of a locked package on its own and takes the newest
#   release, which the lock's hashes then refuse. `pip check` after each install proves the lock
#   is complete.
# - Debian packages: named in APT_PACKAGES, from the machine's Debian release (apt pins no
#   versions; a Debian stable release changes only by security and bug-fix updates).
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION  := v1.7.12
FUZZTIME            ?= 15s
PIP_QUIET           := --quiet --disable-pip-version-check --no-input

# End-to-end test dependencies (`make e2e-deps`): a real Ollama built from the Go module proxy
# and the tiny-model writer (both from tools/ollama, whose go.mod pins Ollama and go.sum holds the
# checksums), and moto's AWS emulator in its own venv from tools/requirements-moto.txt (hashes).
PYTHON        ?= python3
# Debian packages the tests use: the headers the Ollama cgo build needs and zstd (end-to-end
# tests); cloud-init, shellcheck and systemd-analyze (the validators run on rendered artifacts).
APT_PACKAGES  := nlohmann-json3-dev libstb-dev zstd cloud-init shellcheck systemd redis-server
SUDO          := $(if $(filter 0,$(shell id -u)),,sudo)
MOTO_VENV     := $(CURDIR)/.cache/moto-venv
# The header directory is outside the checkout: its path is part of the cgo build's cache key,
# so under the checkout every new clone (CI's, a second worktree) compiled Ollama's C++ again
# (minutes) instead of relinking it from the Go build cache.
OLLAMA_INC    := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llm-sandbox/ollama-include
OLLAMA_INPUTS := tools/ollama/go.mod tools/ollama/go.sum $(wildcard tools/ollama/cmd/ollama/*.go)
# The pinned LiteLLM and every dependency as wheels for this machine's Python, downloaded from
# PyPI once with the hashes of the lock (pip refuses a file whose hash the lock lacks) and again
# only when the lock changes; the gateway test and the benchmark pack them as the wheelhouse a
# department's bucket holds.
LITELLM_LOCK   := versions/litellm-requirements.txt
LITELLM_WHEELS := $(CURDIR)/.cache/litellm-wheels
E2E_ENV       := LLM_SANDBOX_OLLAMA_BIN=$(BIN)/ollama LLM_SANDBOX_TINYMODEL_BIN=$(BIN)/tinymodel \
                 LLM_SANDBOX_MOTO_PYTHON=$(MOTO_VENV)/bin/python LLM_SANDBOX_LITELLM_WHEELS=$(LITELLM_WHEELS)
BENCH_FLAGS   ?=
# The Pulumi CLI the orchestration tests drive (sandboxctl preview/up/destroy/refresh): built from
# the Go module proxy in tools/pulumi, whose go.mod pins github.com/pulumi/pulumi/pkg/v3 at the
# version of the SDK in ./go.mod and whose go.sum holds the checksums (~4 min cold, ~2.3 GB peak;
# ~10 s to relink from the Go build cache).
PULUMI_INPUTS := tools/pulumi/go.mod tools/pulumi/go.sum
E2E_ENV       += LLM_SANDBOX_PULUMI_BIN=$(BIN)/pulumi

.PHONY: plan validate test tools lint unit fuzz help e2e-deps apt e2e bench

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

plan: sandboxctl ## offline plan of an example department (STACK=chemistry by default)
	$(BIN)/sandboxctl plan $(STACK)

# `make local`: the stack's serving path on this machine with tiny random-weight models, offline
# (docs/local.md): the real Ollama and the tiny-model writer built from the Go module proxy and
# the pinned LiteLLM's wheels, as `make e2e-deps` builds them. bin/sandboxctl is exec'd, so that
# Ctrl-C and SIGTERM reach it and it stops every process it started.
LOCAL_FLAGS ?=
LOCAL_ENV   := LLM_SANDBOX_OLLAMA_BIN=$(BIN)/ollama LLM_SANDBOX_TINYMODEL_BIN=$(BIN)/tinymodel \
               LLM_SANDBOX_LITELLM_WHEELS=$(LITELLM_WHEELS)
.PHONY: local
local: sandboxctl $(BIN)/ollama $(BIN)/tinymodel $(LITELLM_WHEELS)/.downloaded ## run STACK on 127.0.0.1 with tiny models, offline; Ctrl-C stops it (LOCAL_FLAGS=...)
	exec env $(LOCAL_ENV) $(BIN)/sandboxctl local $(STACK) --tiny $(LOCAL_FLAGS)

# The official OpenAI Python SDK, for the test of the README's local sequence (start, a streamed
# completion through the SDK, stop) and the SDK suite of the API surface (tests/e2e, TestOpenAISDKs):
# its own venv from tools/requirements-openai.txt (hashes),
# installed from the LiteLLM wheels already downloaded (the lock holds the same files).
OPENAI_VENV := $(CURDIR)/.cache/openai-venv
E2E_ENV     += LLM_SANDBOX_OPENAI_PYTHON=$(OPENAI_VENV)/bin/python
e2e-deps: $(OPENAI_VENV)/.installed
$(OPENAI_VENV)/.installed: tools/requirements-openai.txt $(LITELLM_WHEELS)/.downloaded
	test -x $(OPENAI_VENV)/bin/python || $(PYTHON) -m venv $(OPENAI_VENV)
	$(OPENAI_VENV)/bin/pip install $(PIP_QUIET) --require-hashes --no-deps --no-index --find-links $(LITELLM_WHEELS) -r tools/requirements-openai.txt
	$(OPENAI_VENV)/bin/pip check
	touch $@

validate: sandboxctl ## validate every stack file in stacks/
	$(BIN)/sandboxctl validate

# The operator command as a binary: run it as bin/sandboxctl. `go run` would report every
# non-zero exit as 1 and print "signal: broken pipe" under `| head`. -buildvcs=auto stamps the
# git revision that `sandboxctl version` prints, whatever GOFLAGS says.
.PHONY: sandboxctl
# The pulumi-aws packages whose first compile is most of a cold build: when they are not in the
# Go build cache, say so before the silence.
AWS_SDK_HEAVY := github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2 github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2
FIRST_BUILD   := 12 minutes and 4.6 GiB of memory on two cores; GOFLAGS=-p=1 GOGC=25 for less memory
sandboxctl: ## build bin/sandboxctl, the operator command
	@if $(GO) list -f '{{.Stale}}' $(AWS_SDK_HEAVY) 2>/dev/null | grep -q true; then \
	  echo "First build: compiling the pulumi-aws SDK, which takes about $(FIRST_BUILD) (README, Set up); later builds take seconds."; \
	fi
	$(GO) build -buildvcs=auto -o $(BIN)/sandboxctl ./cmd/sandboxctl

test: e2e-deps tools lint unit fuzz validate vmtest ## install the test tools, then run every check and test

tools: apt ## install the pinned test tools into bin/ and .cache/venv
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	GOBIN=$(BIN) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) --require-hashes --no-deps -r tools/requirements-lint.txt
	$(VENV)/bin/pip check

lint: ## gofmt, go vet, staticcheck, yamllint, actionlint (with shellcheck over the workflows)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(VENV)/bin/yamllint --strict .
	$(BIN)/actionlint

unit: e2e-deps ## go test ./... (unit, component, plan, command and end-to-end tests)
	$(E2E_ENV) $(GO) test -count=1 -timeout 30m ./...

fuzz: ## a short run of each fuzz test: the stack-file parsers and the SSE chunk parser (FUZZTIME=15s each)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzStackFile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzValues$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/loadgen -run '^$$' -fuzz '^FuzzChunk$$' -fuzztime $(FUZZTIME)

e2e: e2e-deps ## only the end-to-end tests (tests/e2e), verbose
	$(E2E_ENV) $(GO) test -count=1 -v ./tests/e2e/

bench: e2e-deps ## the gateway benchmark: LiteLLM vs direct Ollama at 1, 8 and 32 streaming clients (BENCH_FLAGS=...)
	$(E2E_ENV) $(GO) run ./tests/bench/gatewaybench $(BENCH_FLAGS)

# The load generator of `sandboxctl loadtest` against its loopback load double (no e2e-deps
# needed): 500 and 1000 concurrent streams of 20 tokens/s; docs/performance.md has the figures.
LOADGEN_BENCH_FLAGS ?=
.PHONY: bench-loadgen
bench-loadgen: ## the load generator's own benchmark: 500 and 1000 streams against a load double (LOADGEN_BENCH_FLAGS=...)
	$(GO) run ./tests/bench/loadgenbench $(LOADGEN_BENCH_FLAGS)

e2e-deps: apt $(BIN)/ollama $(BIN)/tinymodel $(MOTO_VENV)/.installed $(LITELLM_WHEELS)/.downloaded ## build or install what the end-to-end tests run (cached)

apt: # the Debian packages above; apt-get only when one is missing
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  fi

# miniaudio.h, missing from Ollama's module zip, comes from the Go module pinned in
# tools/ollama/go.mod (see tools/ollama/headers.go).
$(OLLAMA_INC)/miniaudio/miniaudio.h: tools/ollama/go.mod tools/ollama/go.sum
	@mkdir -p $(@D)
	cd tools/ollama && $(GO) mod download github.com/gen2brain/malgo && \
	  install -m 0644 "$$($(GO) list -m -f '{{.Dir}}' github.com/gen2brain/malgo)/miniaudio.h" $@.$$$$.tmp && \
	  mv $@.$$$$.tmp $@

# The real Ollama (CPU only, ~2.5 min cold, ~1 GB peak). Rebuilt only when tools/ollama's pins
# or main package change; the flock keeps concurrent makes from running two of these builds at
# once, and the rename means nobody ever runs a half-written binary.
$(BIN)/ollama: $(OLLAMA_INPUTS) $(OLLAMA_INC)/miniaudio/miniaudio.h | apt
	$(call build-ollama,$$(version=$$($(GO) list -m -f "{{.Version}}" github.com/ollama/ollama) && echo $${version#v}))

# $(call build-ollama,VERSION): build tools/ollama's Ollama into $@, reporting VERSION (a shell
# word, expanded in the build's shell): the recipe of bin/ollama and bin/ollama-vm.
define build-ollama
@mkdir -p $(BIN) $(CURDIR)/.cache
cd tools/ollama && flock $(CURDIR)/.cache/ollama-build.lock sh -c '\
  version=$(1) && \
  CGO_ENABLED=1 CGO_CPPFLAGS="-I$(OLLAMA_INC)" $(GO) build -trimpath \
    -ldflags "-X github.com/ollama/ollama/version.Version=$$version" \
    -o $@.tmp ./cmd/ollama && mv $@.tmp $@'
endef

$(BIN)/tinymodel: tools/ollama/go.mod tools/ollama/go.sum $(wildcard tools/ollama/cmd/tinymodel/*.go)
	@mkdir -p $(BIN)
	cd tools/ollama && CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/tinymodel

$(MOTO_VENV)/.installed: tools/requirements-moto.txt
	test -x $(MOTO_VENV)/bin/python || $(PYTHON) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install $(PIP_QUIET) --require-hashes --no-deps -r tools/requirements-moto.txt
	$(MOTO_VENV)/bin/pip check
	touch $@

# --only-binary: nothing is built from source (no compiler runs code from an sdist); every
# package of the lock has a wheel for CPython 3.11 on manylinux x86_64. Downloaded into a
# scratch directory and renamed, so an interrupted download never looks complete.
$(LITELLM_WHEELS)/.downloaded: $(LITELLM_LOCK)
	rm -rf $(LITELLM_WHEELS) $(LITELLM_WHEELS).tmp
	$(PYTHON) -m pip download $(PIP_QUIET) --require-hashes --no-deps --only-binary :all: -r $(LITELLM_LOCK) -d $(LITELLM_WHEELS).tmp
	mv $(LITELLM_WHEELS).tmp $(LITELLM_WHEELS)
	touch $@

# The Pulumi CLI, stamped with its version (unstamped, it reports none and sandboxctl refuses it);
# `make bin/pulumi` builds just this. Rebuilt only when tools/pulumi's pins change; the flock keeps
# concurrent makes from running two of these builds at once, and the rename means nobody ever runs
# a half-written binary.
e2e-deps: $(BIN)/pulumi
bin/pulumi: $(BIN)/pulumi
$(BIN)/pulumi: $(PULUMI_INPUTS)
	@mkdir -p $(BIN) $(CURDIR)/.cache
	cd tools/pulumi && flock $(CURDIR)/.cache/pulumi-build.lock sh -c '\
	  version=$$($(GO) list -m -f "{{.Version}}" github.com/pulumi/pulumi/pkg/v3) && \
	  $(GO) build -trimpath \
	    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$${version}" \
	    -o $@.tmp github.com/pulumi/pulumi/pkg/v3/cmd/pulumi && mv $@.tmp $@'

# The Debian VM image the QEMU boot test (tests/vm) boots: the host's Debian release built by
# tools/vmimage/build.sh (debootstrap, as root). It is cached outside the checkout, like the Ollama
# headers, so every clone shares it; the directory is named by a hash of tools/vmimage/* and the
# host's Debian point release, so a change to either builds a new image beside the old ones.
# Packages: QEMU; debootstrap and mkfs.ext4 for the image; mkfs.vfat and mtools for the NoCloud
# seed disk; socat for the relays behind QEMU's guestfwd.
VM_APT_PACKAGES := qemu-system-x86 debootstrap e2fsprogs dosfstools mtools socat
VMIMAGE_CACHE   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llm-sandbox/vmimage
VMIMAGE_DIR     := $(VMIMAGE_CACHE)/$(shell cd $(CURDIR) && sha256sum tools/vmimage/* /etc/debian_version | sha256sum | cut -c1-16)
.PHONY: vm-apt vmimage

vm-apt: # the Debian packages of the VM test; apt-get only when one is missing
	@missing=$$(for p in $(VM_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  fi

# Built only when rootfs.img (written last) is missing; into $(VMIMAGE_DIR).tmp and renamed, so an
# interrupted build never looks complete. The flock keeps two makes from building at once: the
# second waits and then finds the first one's image.
vmimage: vm-apt ## build or reuse the cached VM image
	@mkdir -p $(VMIMAGE_CACHE)
	@flock $(VMIMAGE_CACHE)/build.lock sh -c '\
	  if [ -e $(VMIMAGE_DIR)/rootfs.img ]; then echo "vmimage: cached in $(VMIMAGE_DIR)"; exit 0; fi; \
	  $(SUDO) rm -rf $(VMIMAGE_DIR).tmp $(VMIMAGE_DIR) && \
	  $(SUDO) tools/vmimage/build.sh $(VMIMAGE_DIR).tmp && \
	  mv $(VMIMAGE_DIR).tmp $(VMIMAGE_DIR)'

# The VM boot test (tests/vm; docs/node-agent.md, "The VM boot test"): a pool node of an
# air-gapped department boots from the user data the plan renders, under QEMU, against moto on
# the host, and a node with a corrupted agent abandons. About 3 minutes with a cached image
# under TCG on two cores, so it is part of `make test`. VM_GATEWAY=1 boots a gateway node beside
# the pool node and sends a chat completion through both: about 13 minutes more under TCG, which
# CI's run has no room for. VM_ACCEL=kvm uses KVM where it runs guests (where /dev/kvm opens but
# guests hang, as under some nested virtualization, keep tcg).
VM_ACCEL   ?= tcg
VM_GATEWAY ?=
# The node on / refuses an Ollama below the floor, so the VM installs the Ollama of
# tools/ollama stamped with the version versions.Ollama pins: a relink of bin/ollama's build.
VM_OLLAMA_VERSION := $(shell awk '/^var Ollama = Release\{/{f=1} f && /Version:/{gsub(/[^0-9.]/,"",$$2); print $$2; exit}' versions/versions.go)
VM_ENV := LLM_SANDBOX_VM_IMAGE=$(VMIMAGE_DIR) LLM_SANDBOX_VM_OLLAMA_BIN=$(BIN)/ollama-vm \
          LLM_SANDBOX_TINYMODEL_BIN=$(BIN)/tinymodel LLM_SANDBOX_MOTO_PYTHON=$(MOTO_VENV)/bin/python \
          LLM_SANDBOX_LITELLM_WHEELS=$(LITELLM_WHEELS) LLM_SANDBOX_VM_ACCEL=$(VM_ACCEL) \
          LLM_SANDBOX_VM_GATEWAY=$(VM_GATEWAY)
.PHONY: vmtest
vmtest: vmimage $(BIN)/ollama-vm $(BIN)/tinymodel $(MOTO_VENV)/.installed $(LITELLM_WHEELS)/.downloaded ## boot a pool node in a QEMU VM from its rendered user data (VM_GATEWAY=1: and a gateway node; VM_ACCEL=kvm to use KVM)
	$(VM_ENV) $(GO) test -count=1 -v -timeout 45m ./tests/vm/

$(BIN)/ollama-vm: $(OLLAMA_INPUTS) $(OLLAMA_INC)/miniaudio/miniaudio.h versions/versions.go | apt
	@test -n "$(VM_OLLAMA_VERSION)" || { echo "no Ollama version found in versions/versions.go"; exit 1; }
	$(call build-ollama,$(VM_OLLAMA_VERSION))
