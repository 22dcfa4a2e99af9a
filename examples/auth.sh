#!/usr/bin/env bash
# Accounts and sessions against the demo server: run `cargo xtask demo` first.
set -euo pipefail
BASE="${PLINTH_URL:-http://127.0.0.1:8080}"
USER_NAME="demo-$RANDOM"
PASS="a long and unremarkable passphrase"

say() { printf '\n# %s\n' "$*"; }
post() { curl -sS -H 'content-type: application/json' "$@"; }

say "register $USER_NAME"
post -d "{\"username\":\"$USER_NAME\",\"password\":\"$PASS\"}" "$BASE/auth/register"; echo

say "a common password is refused"
post -d "{\"username\":\"$USER_NAME-2\",\"password\":\"iloveyou\"}" "$BASE/auth/register"; echo

say "log in: the token is shown once (and set as an HttpOnly cookie)"
TOKEN=$(post -d "{\"username\":\"$USER_NAME\",\"password\":\"$PASS\"}" "$BASE/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
echo "token: ${TOKEN:0:12}…"

say "who am I"
curl -sS -H "authorization: Bearer $TOKEN" "$BASE/auth/me"; echo

say "a plugin route with auth = \"required\" sees the identity, never the token"
curl -sS "$BASE/plugins/members/"; echo
curl -sS -H "authorization: Bearer $TOKEN" "$BASE/plugins/members/"; echo

say "my sessions"
curl -sS -H "authorization: Bearer $TOKEN" "$BASE/auth/sessions"; echo

say "log out; the token is dead at once"
curl -sS -o /dev/null -w '%{http_code}\n' -X POST -H "authorization: Bearer $TOKEN" "$BASE/auth/logout"
curl -sS -H "authorization: Bearer $TOKEN" "$BASE/auth/me"; echo
