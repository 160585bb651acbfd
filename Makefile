# Gatehouse. `make run` starts the gateway with a demo; `make test` runs every test.
GO        ?= go
BIN       := bin/gatehouse
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: run build generate test check bench fuzz clean

run: build
	./$(BIN) serve --demo --db ./gatehouse.db

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gatehouse

generate:
	$(GO) generate ./...

test:
	$(GO) test -race -count=1 -timeout 20m ./...

# check proves the tree is tidy: formatted, vetted, generated templ files fresh.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool templ generate
	@git diff --exit-code -- '*_templ.go' || (echo "generated templ files are stale: run make generate and commit"; exit 1)

# bench measures the stages in-process (-benchmem), then the whole gateway
# against a bare httputil.ReverseProxy, interleaved, in one run.
bench: build
	$(GO) build -o bin/gatehouse-bench ./cmd/gatehouse-bench
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/noop.wasm ./plugins/testdata/guests/noop
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20000x ./server/auth ./server/quota ./plugins
	$(GO) test -run '^$$' -bench Gateway -benchmem -benchtime 5000x ./server
	$(GO) test -run '^$$' -bench Get -benchtime 1000000x ./server/keys
	$(GO) test -run '^$$' -bench IndexMemory -benchtime 1x ./server/keys
	./bin/gatehouse-bench --gatehouse ./$(BIN) --plugin bin/noop.wasm --out bin/bench-report.md

# fuzz runs every fuzz target of every package for FUZZTIME each (make test
# runs their seeds only); go test -fuzz takes one target at a time.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
