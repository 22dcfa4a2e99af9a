-- Plinth's schema, version 1. Records are JSON documents (the codec the sled backend
-- uses); the columns beside them carry what the database must enforce or find by:
-- keys, uniqueness, stock that never goes negative, order versions, indexes.
-- Only what PostgreSQL, CockroachDB and YugabyteDB share: no sequences whose order
-- matters, no triggers, no advisory locks, no LISTEN/NOTIFY. Text keys that pages are
-- ordered by are COLLATE "C": byte order, as in sled, whatever the database's locale.

-- Accounts ---------------------------------------------------------------------------
CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    record JSONB NOT NULL
);

-- Session tokens are kept only as their SHA-256.
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- External accounts (social login): (issuer, subject) -> user.
CREATE TABLE identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE TABLE verified_emails (
    email TEXT PRIMARY KEY,
    user_id TEXT NOT NULL
);

-- Social logins in progress (state, nonce, PKCE verifier), single use, 10 minutes.
CREATE TABLE oidc_pending (
    state_hash BYTEA PRIMARY KEY,
    network TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX oidc_pending_by_network ON oidc_pending (network, created_at);
CREATE INDEX oidc_pending_by_expiry ON oidc_pending (expires_at);

-- One row every start locks first, so the cap is counted exactly across replicas
-- (starts are rate-limited per address; they queue here for a moment).
CREATE TABLE oidc_pending_gate (
    one BOOLEAN PRIMARY KEY CHECK (one)
);
INSERT INTO oidc_pending_gate (one) VALUES (TRUE);

-- Failed logins (and password-change checks) in their windows, counted when they
-- start, deleted when they succeed, swept after an hour.
CREATE TABLE login_attempts (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_attempts_by_username ON login_attempts (username, at);
CREATE INDEX login_attempts_by_ip ON login_attempts (ip, at);

-- Contacts ---------------------------------------------------------------------------
CREATE TABLE contacts (
    owner_id TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    record JSONB NOT NULL,
    PRIMARY KEY (owner_id, id)
);

-- Plugin key-value stores --------------------------------------------------------------
-- Keys are bytes so that their order is byte order on every database.
CREATE TABLE plugin_kv (
    plugin TEXT NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (plugin, key)
);

-- Bytes of keys and values each plugin stores, changed in the same transaction as the
-- entries, so the quota holds across replicas.
CREATE TABLE plugin_kv_usage (
    plugin TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL CHECK (bytes >= 0)
);

-- Catalog ----------------------------------------------------------------------------
CREATE TABLE products (
    sku TEXT COLLATE "C" PRIMARY KEY,
    record JSONB NOT NULL
);

-- Units on hand; a reservation takes them in the same transaction as the order.
CREATE TABLE stock (
    sku TEXT COLLATE "C" PRIMARY KEY,
    units BIGINT NOT NULL CHECK (units >= 0)
);

-- The catalog's change feed, which every replica's search index follows: each product
-- write takes the next position from the head row in its own transaction. The head row
-- lock orders product writes, so positions become visible in commit order, without
-- gaps (no sequence: their numbers are handed out in start order, not commit order).
CREATE TABLE catalog_feed (
    seq BIGINT PRIMARY KEY,
    sku TEXT COLLATE "C" NOT NULL
);
CREATE TABLE catalog_feed_head (
    one BOOLEAN PRIMARY KEY CHECK (one),
    seq BIGINT NOT NULL
);
INSERT INTO catalog_feed_head (one, seq) VALUES (TRUE, 0);

-- Orders -----------------------------------------------------------------------------
CREATE TABLE orders (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    -- Pending, or paid with a label still to buy: the reconciler's work list.
    unsettled BOOLEAN NOT NULL,
    -- Bumped by every save: a save is a compare-and-swap on it.
    version BIGINT NOT NULL,
    -- The reserved units went back to stock (never twice).
    stock_released BOOLEAN NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, created_at, id);
CREATE INDEX orders_by_time ON orders (created_at, id);
CREATE INDEX orders_unsettled ON orders (created_at, id) WHERE unsettled;

-- (payment plugin, provider's charge id) -> order: webhooks find only their own.
CREATE TABLE order_payments (
    plugin TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    PRIMARY KEY (plugin, provider_id)
);

-- Units of each sku a customer holds in orders whose units are out of stock; changed
-- in the same transactions as the stock (per-customer limits count reservations).
CREATE TABLE user_purchases (
    user_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    units BIGINT NOT NULL CHECK (units >= 0),
    PRIMARY KEY (user_id, sku)
);

-- Idempotency keys of checkouts: the claim, then the stored answer.
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    order_id TEXT NOT NULL,
    response JSONB,
    created_at BIGINT NOT NULL,
    claimed_at BIGINT NOT NULL
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
