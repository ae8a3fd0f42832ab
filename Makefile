# authphone: `make demo` runs the main job, `make test` runs every test.
GO      ?= go
FUZZTIME ?= 10s
# the commit `authphone version` reports, for builds where Go records none
# (GOFLAGS=-buildvcs=false, or a tree Go does not read as a repository)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.commit=$(COMMIT)

.DEFAULT_GOAL := help

.PHONY: help demo test build bench bench-peer bench-fleet-pair fuzz lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: ## walk through every flow against an in-process emulator
	@echo "make demo: compiling authphone first (the first build on a fresh machine takes a few minutes)..."
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/authphone demo

test: ## every test, race detector on (OS-keyring tests in a private D-Bus session)
	@if command -v dbus-run-session >/dev/null 2>&1 && command -v gnome-keyring-daemon >/dev/null 2>&1; then \
		sh testdata/with-keyring.sh $(GO) test -race -count=1 -timeout 30m ./... ; \
	else \
		echo "note: dbus-run-session or gnome-keyring-daemon is missing, so the OS-keyring tests skip (apt-get install gnome-keyring dbus)"; \
		$(GO) test -race -count=1 -timeout 30m ./... ; \
	fi

build: ## build bin/authphone
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/authphone ./cmd/authphone

bench: ## the performance suite: approvals against their crypto, the fleet at K=100/1000/10000, Next with 1 and 100 accounts (figures in ARCHITECTURE.md)
	$(GO) test -run '^$$' -bench . -benchmem $(BENCHFLAGS) ./sdk/... ./emulator/...

bench-peer: ## authphone against virtualwebauthn + go-webauthn (their own module in testdata/peerbench)
	cd testdata/peerbench && $(GO) test -bench . -benchmem $(BENCHFLAGS) .

bench-fleet-pair: ## fleets of 100 and 10 000 phones over loopback on memory and SQLite, and their ratio (issue 9; STORES, KS, COUNT, ROUNDS, WARMUP, FLEETARGS)
	bash testdata/fleetpair.sh

fuzz: ## a short run of every fuzz target (FUZZTIME each)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./sdk/tlv
	$(GO) test -run '^$$' -fuzz '^FuzzParseAssertions$$' -fuzztime $(FUZZTIME) ./sdk/uaf
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeResponseFast$$' -fuzztime $(FUZZTIME) ./sdk/uaf
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRequestFast$$' -fuzztime $(FUZZTIME) ./sdk/uaf
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./sdk/dispatch
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSONFast$$' -fuzztime $(FUZZTIME) ./sdk/dispatch
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./sdk/devsig
	$(GO) test -run '^$$' -fuzz '^FuzzParsePairingQR$$' -fuzztime $(FUZZTIME) ./sdk/trustapi
	$(GO) test -run '^$$' -fuzz '^FuzzDeviceKey$$' -fuzztime $(FUZZTIME) ./sdk/deviceapi
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshalFast$$' -fuzztime $(FUZZTIME) ./sdk/deviceapi
	$(GO) test -run '^$$' -fuzz '^FuzzCounterLog$$' -fuzztime $(FUZZTIME) ./sdk
	$(GO) test -run '^$$' -fuzz '^FuzzReadSSE$$' -fuzztime $(FUZZTIME) ./sdk/backend
	$(GO) test -run '^$$' -fuzz '^FuzzWebhookVerify$$' -fuzztime $(FUZZTIME) ./sdk/backend
	$(GO) test -run '^$$' -fuzz '^FuzzParseChaos$$' -fuzztime $(FUZZTIME) ./sdk/cloudapi
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFast$$' -fuzztime $(FUZZTIME) ./sdk/cloudapi
	$(GO) test -run '^$$' -fuzz '^FuzzParseFaults$$' -fuzztime $(FUZZTIME) ./sdk
	$(GO) test -run '^$$' -fuzz '^FuzzImportAccounts$$' -fuzztime $(FUZZTIME) ./sdk
	$(GO) test -run '^$$' -fuzz '^FuzzImport$$' -fuzztime $(FUZZTIME) ./emulator

lint: ## gofmt and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
