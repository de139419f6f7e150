-- Orders, payments, grants, release links and receipts (issue 7;
-- docs/market-design.md, "Orders, payments, grants").
--
-- An order freezes the listing's price and rail at the time it is made.
-- States: awaiting-payment → paid → granted (or cancelled). `claimed_tx`
-- is the transaction the buyer last said pays the order; it binds nothing
-- until the payment is verified on chain, when a `payments` row is written.
CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    listing_id TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    seller_did TEXT NOT NULL,
    buyer_did TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    buyer_public_key_hex TEXT NOT NULL,
    amount TEXT NOT NULL,
    rail TEXT NOT NULL,
    state TEXT NOT NULL,
    claimed_tx TEXT,
    claim_status TEXT,
    created_at TEXT NOT NULL,
    paid_at TEXT,
    granted_at TEXT
);
CREATE INDEX orders_buyer ON orders (buyer_did, id);
CREATE INDEX orders_seller ON orders (seller_did, state, id);
CREATE INDEX orders_listing ON orders (listing_id);
CREATE INDEX orders_claims ON orders (state, claimed_tx);

-- One verified payment per order, and one order per payment: the primary
-- key on `payment_key` (`evm:<tx hash>` or `invoice:<order id>`) is what
-- makes a replayed transaction a 409.
CREATE TABLE payments (
    payment_key TEXT PRIMARY KEY NOT NULL,
    order_id TEXT NOT NULL UNIQUE,
    rail TEXT NOT NULL,
    details TEXT NOT NULL,
    verified_at TEXT NOT NULL
);

-- At most one grant per order, whatever the daemon or the server do after
-- a crash: the primary key decides. The access files are objects under
-- `object_prefix`, named in `files` (JSON list).
CREATE TABLE grants (
    order_id TEXT PRIMARY KEY NOT NULL,
    object_prefix TEXT NOT NULL,
    files TEXT NOT NULL,
    entries BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL
);

-- Bearer links to an order's release package (or its confirmation), made
-- by the buyer (or the seller) and revocable; only the token's SHA-256 is
-- stored.
CREATE TABLE order_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX order_links_order ON order_links (order_id);

-- The signed license receipt of each paid order (JSON text as served).
CREATE TABLE receipts (
    order_id TEXT PRIMARY KEY NOT NULL,
    receipt TEXT NOT NULL,
    issued_at TEXT NOT NULL
);

-- Operator keys an owner entrusted to the server for automatic grants:
-- the X25519 secret, sealed under the server's key-encryption key.
CREATE TABLE operator_keys (
    machine_did TEXT PRIMARY KEY NOT NULL,
    owner_did TEXT NOT NULL,
    public_key_hex TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
