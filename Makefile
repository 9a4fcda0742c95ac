GO ?= go
BIN := bin/switchover
PROTO_DIR := plugins/protocol/v1

.PHONY: build test demo demo-down generate lint bench-plan bench-apply bench-ssh bench-ad bench-ad-sweep bench-backup bench-saas bench-entra lab fuzz clean check-generate

build:
	$(GO) build -o $(BIN) ./cmd/switchover

test:
	$(GO) test -count=1 ./...

# The whole switchover against a local lab (root; installs missing Debian
# packages as .ci/run does): runbooks/full-switch planned, applied and
# checked; the lab stays up until make demo-down.
DEMO_DIR ?= $(or $(TMPDIR),/tmp)/switchover-demo
demo: build
	@bash .ci/deps
	$(GO) build -o bin/switchover-demo ./internal/tools/demo
	bin/switchover-demo up -dir $(DEMO_DIR) -bin $(BIN)

demo-down:
	$(GO) build -o bin/switchover-demo ./internal/tools/demo
	bin/switchover-demo down -dir $(DEMO_DIR)

generate:
	cd $(PROTO_DIR) && protoc --proto_path=. \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		plugin.proto

# Fails when `make generate` would change committed generated code.
check-generate: generate
	git diff --exit-code -- $(PROTO_DIR)

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ERRCHECK := github.com/kisielk/errcheck@v1.30.0
# errcheck covers the packages that write state, secrets and the audit trail;
# .ci/errcheck-excludes.txt lists what is deliberately not checked (terminal
# output, closing what was only read).
ERRCHECK_PKGS := ./internal/cli/... ./internal/operation/... ./internal/engine/... ./internal/workspace/... ./internal/audit/... ./internal/secrets/... ./internal/plans/... ./internal/state/

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(ERRCHECK) -exclude .ci/errcheck-excludes.txt -ignoretests $(ERRCHECK_PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./plugins/... | grep '/internal/' || true); \
		if [ -n "$$bad" ]; then echo "plugins must not import internal/: $$bad"; exit 1; fi
	@# A plugin imports only plugins/sdk (and its own client libraries), never another plugin.
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./plugins/... | grep -v '^github.com/switchover/switchover/plugins/sdk' | grep -v '^github.com/switchover/switchover/plugins/protocol' \
		| grep -E ': .*github.com/switchover/switchover/plugins/(core|ssh|ad|entra|scim|http|backup)\b' || true); \
		if [ -n "$$bad" ]; then echo "a plugin imports another plugin: $$bad"; exit 1; fi
	@# The engine depends on no plugin and not on the plugin host (arrows point down).
	@bad=$$($(GO) list -deps ./internal/engine | grep -E 'switchover/(plugins/(core|ssh|ad|entra|scim|http|backup)|internal/(pluginhost|cli|operation))$$' || true); \
		if [ -n "$$bad" ]; then echo "internal/engine depends on: $$bad"; exit 1; fi
	@# The operations sit between the cli and the engine: they never reach up to the cli.
	@bad=$$($(GO) list -deps ./internal/operation | grep -E 'switchover/internal/cli$$' || true); \
		if [ -n "$$bad" ]; then echo "internal/operation depends on: $$bad"; exit 1; fi
	@# Test labs live under internal/testing/ and never reach the binary.
	@bad=$$(ls -d internal/*lab internal/graphtest internal/testca internal/testplugin 2>/dev/null || true); \
		if [ -n "$$bad" ]; then echo "test labs belong under internal/testing/: $$bad"; exit 1; fi
	@bad=$$($(GO) list -deps ./cmd/switchover | grep 'switchover/internal/testing/' || true); \
		if [ -n "$$bad" ]; then echo "the switchover binary links test labs: $$bad"; exit 1; fi
	@# No engine function over 60 lines, no cli or operation function over 80, no engine type with over 25 methods.
	$(GO) run ./internal/tools/shape internal/engine=60 internal/cli=80 internal/operation=80
	@# A plugin package is named as its folder.
	@bad=$$($(GO) list -f '{{.Name}} {{.ImportPath}}' ./plugins/... | awk '{n=split($$2,p,"/"); if ($$1 != p[n] && $$1 != "main" && p[n] != "v1") print}'); \
		if [ -n "$$bad" ]; then echo "plugin packages must be named as their folders: $$bad"; exit 1; fi
	@# go.mod is tidy (direct dependencies are not marked indirect).
	@cp go.mod /tmp/switchover-go.mod.lint; cp go.sum /tmp/switchover-go.sum.lint; $(GO) mod tidy; \
		if ! cmp -s go.mod /tmp/switchover-go.mod.lint || ! cmp -s go.sum /tmp/switchover-go.sum.lint; then diff /tmp/switchover-go.mod.lint go.mod | head -20; cp /tmp/switchover-go.mod.lint go.mod; cp /tmp/switchover-go.sum.lint go.sum; echo "go.mod is not tidy: run go mod tidy"; exit 1; fi

bench-plan: build
	$(GO) run ./internal/tools/bench -what plan -bin $(BIN)

BENCH_ENTRA_PARALLELISM ?= 40

bench-ssh: build
	$(GO) run ./internal/tools/bench -what ssh -hosts 20 -bin $(BIN)
	$(GO) run ./internal/tools/bench -what ssh-sweep -hosts 20 -bin $(BIN)

# 1,000 accounts take Samba (one process, slow password hashing) many minutes
# to create; 200 by default, BENCH_AD_ACCOUNTS=1000 for the full figure.
BENCH_AD_ACCOUNTS ?= 200
bench-ad: build
	$(GO) run ./internal/tools/bench -what ad -accounts $(BENCH_AD_ACCOUNTS) -runs 2 -bin $(BIN)

bench-ad-sweep: build
	$(GO) run ./internal/tools/bench -what ad-sweep -accounts 1000 -ous 200 -runs 3 -bin $(BIN)

bench-backup: build
	$(GO) run ./internal/tools/bench -what backup -mb 1024 -runs 3 -bin $(BIN)

bench-saas: build
	$(GO) run ./internal/tools/bench -what saas -accounts 1000 -runs 3 -bin $(BIN)

bench-entra: build
	$(GO) run ./internal/tools/bench -what entra -accounts 2000 -runs 2 -parallelism $(BENCH_ENTRA_PARALLELISM) -bin $(BIN)

bench-apply: build
	$(GO) run ./internal/tools/bench -what apply -bin $(BIN)

# Isolated OpenSSH hosts on 127.0.0.1 for the ssh plugin's example (root).
lab: build
	$(GO) run ./internal/tools/sshlab -hosts 3

fuzz:
	$(GO) test ./internal/runbook -run '^$$' -fuzz FuzzLoad -fuzztime 30s

clean:
	rm -rf bin
