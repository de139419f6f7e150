-- Listings, their search index and their disclosed sample keys
-- (docs/market-design.md, "Listings and catalog").
--
-- Prices: `price_amount` is the price in the rail's base units (wei, cents)
-- as a decimal integer string, exactly as given; `price_key` is the same
-- integer left-padded with zeros to 78 digits (room for any 256-bit
-- amount), so that comparing and sorting the text compares the numbers,
-- exactly and on both engines. JSON documents (tags, sample indexes,
-- license, rail, delivery) are stored as text.
CREATE TABLE listings (
    id TEXT PRIMARY KEY NOT NULL,
    owner_did TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    domain TEXT,
    schema_hint TEXT,
    sample_chunk_indexes TEXT NOT NULL,
    license TEXT,
    price_amount TEXT NOT NULL,
    price_key TEXT NOT NULL,
    rail TEXT NOT NULL,
    delivery TEXT NOT NULL,
    state TEXT NOT NULL,
    sales_count BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    published_at TEXT,
    published_unix BIGINT
);
CREATE INDEX listings_owner ON listings (owner_did);
CREATE INDEX listings_dataset ON listings (dataset_id);
CREATE INDEX listings_published ON listings (state, published_unix);
CREATE INDEX listings_price ON listings (state, price_key);

-- Full-text index over title, description, tags (space-separated) and
-- schema hint; one row per listing whatever its state (the catalog joins
-- on `listings.state`), written by the listing code in the same
-- transaction as the listing.
CREATE VIRTUAL TABLE listing_search USING fts5(
    listing_id UNINDEXED,
    title,
    description,
    tags,
    schema_hint,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Sample chunk keys, DISCLOSED BY DESIGN: the owner hands the plaintext
-- chunk keys of a listing's sample chunks to the server, which gives them
-- (sealed to the caller's X25519 key) to anyone who asks. Only chunks the
-- owner chose as samples are here.
CREATE TABLE listing_samples (
    listing_id TEXT NOT NULL,
    chunk_index BIGINT NOT NULL,
    chunk_key_hex TEXT NOT NULL,
    key_commitment TEXT NOT NULL,
    disclosed_at TEXT NOT NULL,
    PRIMARY KEY (listing_id, chunk_index)
);
