-- Principals, sessions, machines and the chunks they upload (docs/market-design.md).
-- Times: `*_at` TEXT columns are UTC `YYYY-MM-DDTHH:MM:SSZ`; `*_unix` BIGINT
-- columns are seconds since the epoch, for comparisons.

CREATE TABLE principals (
    did TEXT PRIMARY KEY NOT NULL,
    first_seen_at TEXT NOT NULL,
    display_name TEXT
);

-- Roles granted explicitly (admin, auditor; owner and buyer by default at
-- first sign-in). `machine` is not stored here: a DID is a machine when it is
-- in `machines`.
CREATE TABLE principal_roles (
    did TEXT NOT NULL,
    role TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (did, role)
);

-- Session tokens: only the SHA-256 of the token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    did TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_unix BIGINT NOT NULL
);
CREATE INDEX sessions_did ON sessions (did);

-- A machine, registered by its owner with the machine's EIP-191 signature
-- over `statement`. `recipients` is a JSON array of
-- {recipientId, recipientType, publicKeyHex}.
CREATE TABLE machines (
    did TEXT PRIMARY KEY NOT NULL,
    owner_did TEXT NOT NULL,
    chain_public_key TEXT NOT NULL,
    recipients TEXT NOT NULL,
    statement TEXT NOT NULL,
    signature TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
CREATE INDEX machines_owner ON machines (owner_did);

-- One chain per (machine, topic): what the next chunk must link to.
CREATE TABLE chains (
    machine_did TEXT NOT NULL,
    topic TEXT NOT NULL,
    chunk_count BIGINT NOT NULL,
    head_chunk_id TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (machine_did, topic)
);

-- Chunks as received: the envelope (JSON text, as uploaded) and where the
-- ciphertext object is. Never plaintext.
CREATE TABLE chunks (
    machine_did TEXT NOT NULL,
    topic TEXT NOT NULL,
    idx BIGINT NOT NULL,
    chunk_id TEXT NOT NULL,
    previous_chunk_id TEXT,
    envelope TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    ciphertext_hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    received_unix BIGINT NOT NULL,
    PRIMARY KEY (machine_did, topic, idx)
);
CREATE UNIQUE INDEX chunks_by_id ON chunks (machine_did, topic, chunk_id);
CREATE INDEX chunks_by_time ON chunks (machine_did, topic, received_unix);
