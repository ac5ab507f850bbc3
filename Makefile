# Newcomer's commands: make run, make test (each does `make setup` first). See README.md.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# grpcnotrace: no golang.org/x/net/trace, whose html/template would keep every
# exported method in the binary (docs/performance.md); also internal/testkit.BuildTags
GOTAGS := grpcnotrace

.PHONY: build install setup run test unit check fuzz soak fleet bench bench-1000 bench-latency bench-peer bench-peer-1000 bench-parts bench-smoke release image clean

## build: the image's two static binaries: build/registrator, the lean build (no etcd and skydns2 adapters, about 6 MB less memory), which hands those URIs to build/registrator-full beside it
build:
	CGO_ENABLED=0 go build -trimpath -tags $(GOTAGS),lean -ldflags "$(LDFLAGS)" -o build/registrator ./cmd/registrator
	CGO_ENABLED=0 go build -trimpath -tags $(GOTAGS) -ldflags "$(LDFLAGS)" -o build/registrator-full ./cmd/registrator

## install: registrator (the full build: one binary for every backend) into $(go env GOPATH)/bin
install:
	CGO_ENABLED=0 go install -trimpath -tags $(GOTAGS) -ldflags "$(LDFLAGS)" ./cmd/registrator

## setup: Docker engine installed and running, etcd installed, Consul and CoreDNS built and cached
setup:
	scripts/setup.sh

## run: a local dev Consul on 127.0.0.1:8500 and the daemon against it; does the setup it needs first
run: setup build
	scripts/run-dev.sh

## test: every test, the end-to-end suite included; does the setup it needs first (seconds once done)
test: setup
	CONSUL_BIN="$$(scripts/get-consul.sh)" COREDNS_BIN="$$(scripts/get-coredns.sh)" go test -race -count=1 -timeout 45m ./...

## unit: the tests that need no engine and no server (every package but e2e/ and the five adapters under registry/)
unit:
	go test -race -count=1 $$(go list ./... | grep -v -E '/e2e$$|/registry/(consul|consulkv|etcd|skydns2|zookeeper)$$')

## check: formatting and vet
check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	go vet ./...

## fuzz: each fuzz target for FUZZTIME (default 20s), by scripts/fuzz.sh (which runs a target once more when Go's coordinator fails it on its own deadline with no failing input)
FUZZTIME ?= 20s
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

## soak: the churn-and-fault soak alone for SOAK_DURATION (default 5m; `make test` runs it for 60s); figures in docs/reliability.json. SOAK_SEED=n replays a run's choices
SOAK_DURATION ?= 5m
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT=$(CURDIR)/docs/reliability.json \
	CONSUL_BIN="$$(scripts/get-consul.sh)" COREDNS_BIN="$$(scripts/get-coredns.sh)" \
	go test -count=1 -timeout 60m -run '^TestSoak$$' -v ./e2e

## fleet: the many-hosts tests (simulated hosts on their own network, a Consul and an etcd cluster: internal/bed) and the repairs without -resync, FLEET_COUNT times (default 5); log in build/fleet.log, then the median and worst of each figure. With BED_TCP_RTO_MAX_MS=1000 in the environment every machine of the bed caps TCP's retransmission timeout at 1 s, as docs/many-hosts.md advises on Linux 6.15 and later; with BED_CONSUL_RPC_CLIENT_TIMEOUT=2s every host's Consul agent gives an RPC up after 2 s (limits.rpc_client_timeout; measured there, not advised); FLEET_CUT (default 31s) and FLEET_CUT_DELAY (default 0) set the length and start of the cut past the TTL, FLEET_BRIEF_CUT (under 30s) the least length of the brief cut
FLEET_COUNT ?= 5
fleet: setup
	mkdir -p build
	{ CONSUL_BIN="$$(scripts/get-consul.sh)" COREDNS_BIN="$$(scripts/get-coredns.sh)" \
	go test -count=$(FLEET_COUNT) -timeout 90m -run '^(TestFleet.*|TestSwarmOnThreeHosts|TestTwoEnginesWithOneEngineID|TestTwoHostsGivenOneID|TestConsulAgentRestart|TestConsulKV|TestEtcdOutageAndWipe)$$' -v ./e2e; \
	echo $$? > build/fleet.status; } 2>&1 | tee build/fleet.log
	scripts/fleet-summary.sh build/fleet.log
	exit "$$(cat build/fleet.status)"

## bench: the benchmark on the real engine, Consul and etcd, each figure the median of BENCH_RUNS runs (~20 minutes a run on 2 cores); table on stdout, JSON in docs/performance.json
BENCH_RUNS ?= 3
bench:
	CONSUL_BIN="$$(scripts/get-consul.sh)" go run ./cmd/registrator-bench -runs $(BENCH_RUNS) -out docs/performance.json

## bench-1000: the startup sync of 1000 running containers, alone (~35 minutes on 2 cores); JSON in docs/performance-1000.json
bench-1000:
	CONSUL_BIN="$$(scripts/get-consul.sh)" go run ./cmd/registrator-bench -latency 0 -sync 1000 -burst 0 -steady 0 -out docs/performance-1000.json

## bench-latency: the latency alone, BENCH_RUNS runs (a few minutes); JSON in docs/performance-latency.json
bench-latency:
	CONSUL_BIN="$$(scripts/get-consul.sh)" go run ./cmd/registrator-bench -sync 1 -burst 0 -steady 0 -runs $(BENCH_RUNS) -out docs/performance-latency.json

## bench-peer: side by side with gliderlabs/registrator on Consul (built once into PEER_BIN by ../shared/peer/build-registrator.sh, ~1 minute), BENCH_RUNS runs (~18 minutes a run); table on stdout, JSON in docs/performance-peer.json. Not in CI
PEER_BIN ?= $(HOME)/.cache/registrator/registrator-peer
bench-peer: setup
	test -x "$(PEER_BIN)" || OUT="$(PEER_BIN)" ../shared/peer/build-registrator.sh
	CONSUL_BIN="$$(scripts/get-consul.sh)" go run ./cmd/registrator-bench -peer "$(PEER_BIN)" -latency 20 -sync 100,500 -peer-burst 100,500 -steady-for 10s -runs $(BENCH_RUNS) -out docs/performance-peer.json

## bench-peer-1000: the startup sync of 1000 running containers side by side with gliderlabs/registrator, with each one's peak RSS after it, BENCH_RUNS runs (~10 minutes a run, most of it the engine starting and removing the containers); JSON in docs/performance-peer-1000.json. Not in CI
bench-peer-1000: setup
	test -x "$(PEER_BIN)" || OUT="$(PEER_BIN)" ../shared/peer/build-registrator.sh
	CONSUL_BIN="$$(scripts/get-consul.sh)" go run ./cmd/registrator-bench -peer "$(PEER_BIN)" -latency 0 -sync 1000 -peer-burst "" -steady-for 0 -runs $(BENCH_RUNS) -out docs/performance-peer-1000.json

## bench-parts: what each large dependency costs in binary size and idle memory (a minute)
bench-parts:
	go run ./cmd/registrator-bench -parts

## bench-smoke: the benchmark in a small configuration, as CI runs it (timings not asserted)
bench-smoke:
	CONSUL_BIN="$$(scripts/get-consul.sh)" go run ./cmd/registrator-bench -latency 20 -sync 50 -burst 50 -steady 50 -steady-for 10s

## release: the full build (one static binary for every backend) for linux/amd64 and linux/arm64 in RELEASE_DIR (build/release), with SHA256SUMS
RELEASE_DIR ?= build/release
release:
	mkdir -p $(RELEASE_DIR)
	rm -f $(RELEASE_DIR)/registrator-linux-* $(RELEASE_DIR)/SHA256SUMS
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -tags $(GOTAGS) -ldflags "$(LDFLAGS)" -o $(RELEASE_DIR)/registrator-linux-$$arch ./cmd/registrator || exit 1; \
	done
	cd $(RELEASE_DIR) && sha256sum registrator-linux-* > SHA256SUMS

## image: the image $(IMAGE):$(VERSION) and :latest (FROM scratch) for PLATFORM (this machine's; or PLATFORM=linux/arm64)
IMAGE ?= registrator
PLATFORM ?= linux/$(shell go env GOARCH)
IMAGE_CTX = build/image/$(PLATFORM)
IMAGE_GOENV = CGO_ENABLED=0 GOOS=$(word 1,$(subst /, ,$(PLATFORM))) GOARCH=$(word 2,$(subst /, ,$(PLATFORM)))
image:
	mkdir -p $(IMAGE_CTX)
	$(IMAGE_GOENV) go build -trimpath -tags $(GOTAGS),lean -ldflags "$(LDFLAGS)" -o $(IMAGE_CTX)/registrator ./cmd/registrator
	$(IMAGE_GOENV) go build -trimpath -tags $(GOTAGS) -ldflags "$(LDFLAGS)" -o $(IMAGE_CTX)/registrator-full ./cmd/registrator
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_CTX)/ca-certificates.crt
# --no-cache: the legacy builder would take a layer cached for another
# platform (the same COPY of the CA bundle) and then refuse it as the wrong one
	DOCKER_BUILDKIT=0 docker build --no-cache --platform $(PLATFORM) -f Dockerfile -t $(IMAGE):$(VERSION) -t $(IMAGE):latest $(IMAGE_CTX)

clean:
	rm -rf build
