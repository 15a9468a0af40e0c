# The two commands: `go run ./cmd/casevault serve` and `make test`.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test lint bench build run

test:
	bash scripts/test.sh

lint:
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above" && false)
	go vet ./...
	go run $(STATICCHECK) ./...

bench:
	bash scripts/bench.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/casevault ./cmd/casevault

run:
	go run ./cmd/casevault serve
