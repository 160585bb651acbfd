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
	@missing=; for p in nginx caddy haproxy redis-server; do command -v $$p >/dev/null 2>&1 || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "bench: installing$$missing from Debian for the peer and cluster rows"; \
		$$sudo apt-get install -y $$missing || { $$sudo apt-get update && $$sudo apt-get install -y $$missing; }; \
	fi
	$(GO) build -o bin/gatehouse-bench ./cmd/gatehouse-bench
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/noop.wasm ./plugins/testdata/guests/noop
	@# An in-process benchmark that fails does not stop the run: the report is
	@# still made, and the target fails at the end.
	fail=0; : > bin/bench-go.txt; \
	for args in "-bench . -benchmem -benchtime 20000x ./server/auth ./server/quota ./plugins" \
	            "-bench Gateway -benchmem -benchtime 5000x ./server" \
	            "-bench Observability -benchtime 20000x ./server" \
	            "-bench Get -benchmem -benchtime 1000000x ./server/keys" \
	            "-bench IndexMemory -benchtime 1x ./server/keys" \
	            "-bench GCCycle -benchtime 20x ./server/keys" \
	            "-bench ClusterSnapshot1M -benchtime 1x ./server"; do \
		$(GO) test -run '^$$' $$args >> bin/bench-go.txt 2>&1 || fail=1; \
	done; \
	cat bin/bench-go.txt; \
	./bin/gatehouse-bench --gatehouse ./$(BIN) --plugin bin/noop.wasm --go-bench bin/bench-go.txt --out bin/bench-report.md || fail=1; \
	if [ $$fail -ne 0 ]; then echo "bench: something failed: see the output above and bin/bench-go.txt" >&2; fi; \
	exit $$fail

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
