# shoptrail: every target installs what it needs (scripts/deps.sh) and says
# what it does.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/shoptrail

.PHONY: all run build test test-go test-race test-beacon test-sdk-deps lint deps deps-test bench clean image up down screenshots

all: build

# Ports of `make run`, e.g. make run COLLECTOR_PORT=9080 DEMO_PORT=9081;
# unset ones keep shoptrail dev's defaults (or its SHOPTRAIL_* variables).
COLLECTOR_PORT       ?=
DEMO_PORT            ?=
PROCESSOR_PORT       ?=
KAFKA_PORT           ?=
CLICKHOUSE_PORT      ?=
CLICKHOUSE_HTTP_PORT ?=
ALERTS_PORT          ?=
GRAFANA_PORT         ?=
ALERTER_PORT         ?=
PROMETHEUS_PORT      ?=
RUN_FLAGS := $(if $(COLLECTOR_PORT),-http.addr=127.0.0.1:$(COLLECTOR_PORT)) \
	$(if $(DEMO_PORT),-demo.addr=127.0.0.1:$(DEMO_PORT)) \
	$(if $(PROCESSOR_PORT),-processor.http-addr=127.0.0.1:$(PROCESSOR_PORT)) \
	$(if $(KAFKA_PORT),-kafka.brokers=127.0.0.1:$(KAFKA_PORT)) \
	$(if $(CLICKHOUSE_PORT),-clickhouse.addr=127.0.0.1:$(CLICKHOUSE_PORT)) \
	$(if $(CLICKHOUSE_HTTP_PORT),-clickhouse.http-port=$(CLICKHOUSE_HTTP_PORT)) \
	$(if $(ALERTS_PORT),-alerts.receiver-addr=127.0.0.1:$(ALERTS_PORT)) \
	$(if $(GRAFANA_PORT),-grafana.port=$(GRAFANA_PORT)) \
	$(if $(ALERTER_PORT),-alerter.http-addr=127.0.0.1:$(ALERTER_PORT)) \
	$(if $(PROMETHEUS_PORT),-prometheus.port=$(PROMETHEUS_PORT))

deps:
	@echo ">> installing what running needs (Debian's ClickHouse server) where missing"
	@scripts/deps.sh

deps-test:
	@echo ">> installing what testing needs (ClickHouse, ZooKeeper, Debian's chromium, Go modules, chDB) where missing"
	@scripts/deps.sh test

build:
	@echo ">> building $(BIN) $(VERSION)"
	@GO="$(GO)" scripts/build.sh $(BIN) "$(LDFLAGS)"

run: deps build
	@echo ">> starting the whole pipeline locally (Ctrl-C stops it)"
	@$(BIN) dev $(strip $(RUN_FLAGS))

test: deps-test lint test-beacon test-sdk-deps test-go

test-beacon:
	@echo ">> building and testing the beacon (npm ci if needed, reproducible build, node --test, Chromium)"
	@collector/beacon/ci.sh

test-sdk-deps:
	@echo ">> installing the SDKs the compatibility tests drive (test/sdk: npm ci if needed)"
	@test/sdk/install.sh

# RACE_PKGS run under the race detector (concurrent code: the collector's
# producer, limiter, budget and handlers); the others without it. Measured
# on the shared 2-core machine: the collector packages take ~47 s under
# -race against ~25 s without. Their allocation-count tests skip under
# -race (the detector allocates on its own) and run once more without it.
RACE_PKGS ?= ./collector/...

test-go:
	@echo ">> running Go unit and integration tests (real ClickHouse and Kafka broker, and the shared Grafana where present); $(RACE_PKGS) under -race"
	@scripts/grafana-check.sh
	@$(GO) test -count=1 -timeout 30m -race $(RACE_PKGS)
	@$(GO) test -count=1 -run 'Allocations' $(RACE_PKGS)
	@$(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -v -x -F "$$($(GO) list $(RACE_PKGS))")
	@scripts/grafana-check.sh

bench: build
	@echo ">> collector benchmarks: request path (go test -bench), then load on a local stack (broker + collector + load generator, loopback, ~1 min)"
	@$(GO) test -run '^$$' -bench . -benchtime 2s ./collector/ ./collector/useragent/
	@$(BIN) loadgen -stack -suite -duration 10s -warmup 2s
	@echo ">> processor benchmarks: decoder and inserts, end to end through Kafka, sessionization and ClickHouse (~1 min), memory per open session with 1,000,000 open (~2 min)"
	@$(GO) test -run '^$$' -bench 'Decode|Sink' ./processor/ ./processor/clickhouse/
	@$(GO) test -run '^$$' -bench 'Pipeline|OpenSessionMemory' -benchtime 1x -timeout 30m ./processor/
	@echo ">> alerter benchmarks: 50,000 signals decided, delivered to a local receiver and recorded (~20 s), memory of 1,000,000 cooldowns"
	@$(GO) test -run '^$$' -bench 'Deliver|CooldownMemory' -benchtime 1x -timeout 10m ./processor/alert/

screenshots: deps-test
	@echo ">> rendering every Grafana dashboard (shared Grafana, ClickHouse 18.16 with a simulated shop, Pipeline health from a running dev stack and Prometheus, headless Chromium) into doc/screenshots/"
	@scripts/grafana-check.sh
	@SHOPTRAIL_SCREENSHOTS=$(CURDIR)/doc/screenshots $(GO) test -count=1 -run '^(TestScreenshots|TestDevPipelineHealth)$$' -v ./dashboards/ ./cmd/shoptrail/ | grep -E '^(---|ok|FAIL)|png'

test-race:
	@echo ">> processor tests under the race detector (its goroutines: batch writers, checkpoints, readiness); about twice the time of go test ./processor/"
	@$(GO) test -race -count=1 -timeout 30m ./processor/

lint:
	@echo ">> go vet and gofmt"
	@$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

image:
	@echo ">> building the container image shoptrail:$(VERSION) (needs a Docker engine)"
	@docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t shoptrail:$(VERSION) -t shoptrail:latest .

up:
	@echo ">> starting the compose stack in deploy/compose (needs a Docker engine)"
	@test -f deploy/compose/.env || { echo "deploy/compose/.env is missing: cp deploy/compose/.env.example deploy/compose/.env, then set its passwords"; exit 1; }
	@docker compose -f deploy/compose/docker-compose.yml up -d --build

down:
	@echo ">> stopping the compose stack"
	@docker compose -f deploy/compose/docker-compose.yml down

clean:
	@echo ">> removing bin/ and var/ (the dev stack's data)"
	@rm -rf bin var
