#!/usr/bin/env bash
# Contacts, catalog search and weather against the demo server (`cargo xtask demo`,
# which loads 1,200 demo products on first start).
set -euo pipefail
BASE="${PLINTH_URL:-http://127.0.0.1:8080}"
USER_NAME="shopper-$RANDOM"
PASS="a long and unremarkable passphrase"
say() { printf '\n# %s\n' "$*"; }
post() { curl -sS -H 'content-type: application/json' "$@"; }

post -d "{\"username\":\"$USER_NAME\",\"password\":\"$PASS\"}" "$BASE/auth/register" >/dev/null
TOKEN=$(post -d "{\"username\":\"$USER_NAME\",\"password\":\"$PASS\"}" "$BASE/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
AUTH="authorization: Bearer $TOKEN"

say "save a contact (the phone is normalized to E.164)"
post -H "$AUTH" -d '{"name":"Ada Lovelace","phone":"+44 (20) 7946-0958","email":"ada@example.com","tags":["work"]}' "$BASE/contacts"; echo
say "list contacts with the tag work"
curl -sS -H "$AUTH" "$BASE/contacts?tag=work&sort=name"; echo

say "search the catalog: relevance, prefixes, typos, filters"
curl -sS "$BASE/products/search?q=walnut+lou&limit=3" | python3 -c 'import json,sys; [print(p["sku"], p["name"], p["price"]) for p in json.load(sys.stdin)["products"]]'
curl -sS "$BASE/products/search?q=kettel&limit=3" | python3 -c 'import json,sys; [print(p["sku"], p["name"]) for p in json.load(sys.stdin)["products"]]'
curl -sS "$BASE/products/search?category=Outdoor&max_price=5000&limit=3" | python3 -c 'import json,sys; [print(p["sku"], p["name"], p["price"]["amount"]) for p in json.load(sys.stdin)["products"]]'

say "the weather (needs internet, or OPEN_METEO_BASE pointing at a fake)"
curl -sS -D - "$BASE/weather?city=Lisbon" | grep -iE '^x-cache|temperature_c|^\{' || true
