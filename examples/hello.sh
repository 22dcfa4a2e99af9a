#!/usr/bin/env bash
# A walk through the demo server: run `cargo xtask demo` in another terminal first.
set -euo pipefail
BASE="${PLINTH_URL:-http://127.0.0.1:8080}"

say() { printf '\n# %s\n' "$*"; }

say "liveness"
curl -sS "$BASE/healthz"; echo

say "the hello plugin echoes the request (no Authorization or Cookie ever reaches it)"
curl -sS -H 'authorization: Bearer not-for-plugins' "$BASE/plugins/hello/any/path?x=1"; echo

say "its counter lives in its own kv store; writes are on disk before the answer"
curl -sS -X POST "$BASE/plugins/hello/counter"; echo
curl -sS -X POST "$BASE/plugins/hello/counter"; echo

say "store and read a value"
curl -sS -X PUT --data-binary 'some bytes' "$BASE/plugins/hello/kv/greeting"; echo
curl -sS "$BASE/plugins/hello/kv/greeting"; echo

say "errors are JSON with a stable code and the request id"
curl -sS -H 'x-request-id: demo-1' "$BASE/plugins/nobody/"; echo

say "metrics and the OpenAPI document"
curl -sS "$BASE/metrics" | grep plinth_plugin_invocations_total || true
curl -sS "$BASE/openapi.json" | head -c 200; echo
