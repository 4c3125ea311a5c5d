# shoptrail: every target installs what it needs (scripts/deps.sh) and says
# what it does.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/shoptrail

.PHONY: all run build test test-go lint deps bench clean

all: build

deps:
	@echo ">> installing dependencies (apt, Go modules, chDB) where missing"
	@scripts/deps.sh

build:
	@echo ">> building $(BIN) $(VERSION)"
	@$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/shoptrail

run: deps build
	@echo ">> starting the whole pipeline locally (Ctrl-C stops it)"
	@$(BIN) dev

test: deps lint test-go

test-go:
	@echo ">> running Go unit and integration tests (real ClickHouse and Kafka broker)"
	@$(GO) test -count=1 -timeout 30m ./...

lint:
	@echo ">> go vet and gofmt"
	@$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

clean:
	@echo ">> removing bin/ and var/ (the dev stack's data)"
	@rm -rf bin var
