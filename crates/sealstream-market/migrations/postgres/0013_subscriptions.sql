-- Live subscriptions, part A (issue 17; docs/subscriptions.md).
--
-- Listings get a kind: `dataset` (every listing before this migration,
-- and the default) or `subscription`, which names a machine's topic and
-- its terms (period, grace, history: JSON text in `subscription`) and has
-- no dataset (`dataset_id` is empty). `machine_did` and `topic` are set on
-- subscription listings only, for the catalog's filters.
ALTER TABLE listings ADD COLUMN kind TEXT NOT NULL DEFAULT 'dataset';
ALTER TABLE listings ADD COLUMN subscription TEXT;
ALTER TABLE listings ADD COLUMN machine_did TEXT;
ALTER TABLE listings ADD COLUMN topic TEXT;
CREATE INDEX listings_kind ON listings (state, kind);

-- Each period of a subscription is paid by an order of its own (the order
-- routes, claims, watcher and invoice marking serve it unchanged); such an
-- order names its subscription and has no dataset (`dataset_id` empty).
ALTER TABLE orders ADD COLUMN subscription_id TEXT;
CREATE INDEX orders_subscription ON orders (subscription_id);

-- A subscription freezes the listing's terms, price and rail. Times the
-- entitlement compares are Unix seconds: `active_from_unix` (the first
-- payment's confirmation), `paid_through_unix` (T), `access_end_unix` (E,
-- once final). `state` is as of the last change or sweep.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    listing_id TEXT NOT NULL,
    seller_did TEXT NOT NULL,
    buyer_did TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    machine_did TEXT NOT NULL,
    topic TEXT NOT NULL,
    period_seconds BIGINT NOT NULL,
    grace_seconds BIGINT NOT NULL,
    history TEXT NOT NULL,
    amount TEXT NOT NULL,
    rail TEXT NOT NULL,
    state TEXT NOT NULL,
    active_from_unix BIGINT,
    paid_through_unix BIGINT,
    access_end_unix BIGINT,
    end_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX subscriptions_buyer ON subscriptions (buyer_did, id);
CREATE INDEX subscriptions_seller ON subscriptions (seller_did, id);
CREATE INDEX subscriptions_topic ON subscriptions (machine_did, topic, state);
CREATE INDEX subscriptions_due ON subscriptions (state, paid_through_unix);

-- The periods: number 1 is the first, each renewal one more; the order
-- paying each, and the new buyer key a renewal carries.
CREATE TABLE subscription_periods (
    subscription_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    order_id TEXT NOT NULL UNIQUE,
    new_public_key_hex TEXT,
    created_at TEXT NOT NULL,
    paid_at TEXT,
    PRIMARY KEY (subscription_id, number)
);

-- The buyer keys and the chunk time (Unix seconds) each applies from: the
-- first from 0, a rotated one from its renewal's confirmation.
CREATE TABLE subscription_keys (
    subscription_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    public_key_hex TEXT NOT NULL,
    applies_from_unix BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, seq)
);

-- Every transition, with the time it took effect (for grace and lapsed:
-- T and T + G, not when the sweep ran) and when it was recorded.
CREATE TABLE subscription_history (
    subscription_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    effective_unix BIGINT NOT NULL,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (subscription_id, seq)
);

-- Chunk keys wrapped for a subscriber, one per (subscription, chunk): the
-- primary key makes a second grant of a chunk a no-op or a conflict.
CREATE TABLE subscription_grants (
    subscription_id TEXT NOT NULL,
    chunk_index BIGINT NOT NULL,
    chunk_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    public_key_hex TEXT NOT NULL,
    wrapped_key_hex TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (subscription_id, chunk_index)
);
