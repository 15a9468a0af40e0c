#!/usr/bin/env bash
# The whole test suite, with every real service it needs: PostgreSQL (started
# if installed but stopped) and versitygw (installed with `go install` if
# missing, started on a free port). With CI set, a service that cannot be
# reached fails the run instead of skipping tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

log() { printf '== %s\n' "$*" >&2; }

pg_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

ensure_postgres() {
  if pg_ready; then return 0; fi
  log "PostgreSQL is not answering on 127.0.0.1:5432; trying to start it"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
  elif command -v service >/dev/null 2>&1; then
    service postgresql start 2>/dev/null || true
  fi
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  if pg_ready; then
    psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 ||
      psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null 2>&1 || true
    return 0
  fi
  if [ -n "${CI:-}" ]; then
    log "PostgreSQL is required in CI and could not be started"; exit 1
  fi
  log "WARNING: PostgreSQL unavailable; its tests will be skipped (they fail in CI)"
}

ensure_versitygw() {
  if ! command -v versitygw >/dev/null 2>&1; then
    log "installing versitygw v1.8.0 (go install, about a minute)"
    go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
  fi
  # A private state dir, so a developer's own versitygw is left alone.
  export CASEVAULT_VERSITYGW_STATE="$(mktemp -d)"
  trap 'scripts/versitygw.sh stop >/dev/null 2>&1 || true; rm -rf "$CASEVAULT_VERSITYGW_STATE"' EXIT
  if ! exports="$(bash scripts/versitygw.sh start)"; then
    if [ -n "${CI:-}" ]; then log "versitygw could not be started"; exit 1; fi
    log "WARNING: versitygw could not be started; S3 tests will be skipped (they fail in CI)"
    return 0
  fi
  eval "$exports"
  log "versitygw at $CASEVAULT_TEST_S3_ENDPOINT"
}

# The console's browser tests drive Debian's chromium (chromedp); installed
# here when missing. Without it they skip locally and fail in CI.
# A Chinese font comes with it (fonts-wqy-microhei, 5 MB): without one the
# zh-Hans pages render as boxes in the screenshots.
ensure_chromium() {
  local want=()
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then want+=(fonts-wqy-microhei); fi
  if [ ${#want[@]} -eq 0 ]; then return 0; fi
  log "installing ${want[*]} for the console's browser tests (apt-get)"
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}") >&2 || true
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    if [ -n "${CI:-}" ]; then log "chromium is required in CI and could not be installed"; exit 1; fi
    log "WARNING: chromium unavailable; the console's browser tests will be skipped (they fail in CI)"
  fi
}

# The browser tests inject axe-core (the accessibility checker) into every
# console page. It is not vendored: npm installs the exact bytes pinned by
# scripts/npm/package-lock.json (its integrity hash) into the ignored .tmp/npm,
# reinstalled only when that lockfile changed. npm comes from apt-get when
# missing. Without axe-core the browser tests skip locally and fail in CI, as
# without chromium.
AXE_DIR="$PWD/.tmp/npm"
ensure_axe() {
  local js="$AXE_DIR/node_modules/axe-core/axe.min.js"
  if [ -f "$js" ] && cmp -s scripts/npm/package-lock.json "$AXE_DIR/package-lock.json"; then
    export CASEVAULT_AXE_JS="$js"; return 0
  fi
  log "installing axe-core from npm into .tmp/npm (npm ci) for the console's browser tests"
  if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm) >&2 || true
  fi
  mkdir -p "$AXE_DIR"
  cp scripts/npm/package.json scripts/npm/package-lock.json "$AXE_DIR/"
  if command -v npm >/dev/null 2>&1 &&
    (cd "$AXE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2; then
    export CASEVAULT_AXE_JS="$js"; return 0
  fi
  # A half install must not pass the up-to-date check next time.
  rm -f "$AXE_DIR/package-lock.json"
  if [ -n "${CI:-}" ]; then log "axe-core is required in CI and could not be installed with npm"; exit 1; fi
  log "WARNING: axe-core unavailable (npm missing or failed); the console's browser tests will be skipped (they fail in CI)"
}

# Screenshots of every console page (the browser tests save them here): a
# test artefact, kept out of the work tree so a test run changes no tracked
# file. `CASEVAULT_SCREENSHOTS=$PWD/docs/screenshots make test` refreshes the
# README's copies.
export CASEVAULT_SCREENSHOTS="${CASEVAULT_SCREENSHOTS:-$PWD/.tmp/screenshots}"

ensure_postgres
ensure_versitygw
ensure_chromium
ensure_axe

# The Meilisearch fake reads the OpenAPI description vendored under
# search/meili/testdata/ (MEILI_OPENAPI_SPEC, when set, overrides it).

log "go vet"
go vet ./...
log "go test -race (SQLite and PostgreSQL)"
go test -race -count=1 -timeout 30m "${@:-./...}"

# A short run of every native fuzz target after the main tests (their seed
# corpora under testdata/fuzz/ already ran as ordinary tests above). One
# "package FuzzName executions" triple per line. The budget is a count, not a
# duration: go1.26's coordinator can report a bare "context deadline
# exceeded" when a -fuzztime duration ends while a starved worker is
# mid-call (go.dev/issue/75804, fixed in go1.27), which failed CI once with
# no crasher. A count has no wall-clock deadline; each is about 10 s here.
# FUZZTIME (a duration or an Nx count) overrides every budget.
FUZZ_TARGETS=(
  "./cases FuzzMaskSensitive 100000x"
  "./search FuzzParseQuery 20000x"
  "./search/bleve FuzzFastWidth 20000x"
  "./api FuzzMultipartUpload 1000x"
  "./archive/backup FuzzAppendJSONString 3000x"
)
fuzz_briefly() {
  local t pkg name budget
  for t in "${FUZZ_TARGETS[@]}"; do
    read -r pkg name budget <<<"$t"
    budget="${FUZZTIME:-$budget}"
    log "fuzz $name ($pkg, $budget)"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$budget" "$pkg"
  done
}
if [ $# -eq 0 ]; then
  fuzz_briefly
fi
