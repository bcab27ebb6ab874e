# llm-sandbox: `make plan` renders an example department offline (needs only Go);
# `make test` installs the test tools at pinned versions and runs every check and test.

SHELL := /bin/bash
GO    ?= go
STACK ?= chemistry
BIN   := $(CURDIR)/bin
VENV  := $(CURDIR)/.cache/venv

# Tool pins. Go tools are verified against the Go checksum database on install; Python tools
# are installed with hashes from tools/requirements-lint.txt.
STATICCHECK_VERSION := v0.8.2
FUZZTIME            ?= 15s

.PHONY: plan validate test tools lint unit fuzz help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

plan: ## offline plan of an example department (STACK=chemistry by default)
	$(GO) run ./cmd/sandboxctl plan $(STACK)

validate: ## validate every stack file in stacks/
	$(GO) run ./cmd/sandboxctl validate

test: tools lint unit fuzz validate ## install the test tools, then run every check and test

tools: ## install the pinned test tools into bin/ and .cache/venv
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r tools/requirements-lint.txt

lint: ## gofmt, go vet, staticcheck, yamllint
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(VENV)/bin/yamllint --strict .

unit: ## go test ./... (unit, component, plan and command tests)
	$(GO) test -count=1 ./...

fuzz: ## a short run of each fuzz test (FUZZTIME=15s each)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzStackFile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzValues$$' -fuzztime $(FUZZTIME)
