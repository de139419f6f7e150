-- Datasets: a contiguous range of one machine's topic chain, committed to by
-- a Merkle root over its chunk ids (docs/formats.md, sealstream.dataset.v1).
-- `manifest` is the signed sealstream.dataset.v1 JSON (NULL while the
-- dataset is a draft the server computed and nobody has signed yet).
CREATE TABLE datasets (
    id TEXT PRIMARY KEY NOT NULL,
    owner_did TEXT NOT NULL,
    machine_did TEXT NOT NULL,
    topic TEXT NOT NULL,
    first_index BIGINT NOT NULL,
    chunk_count BIGINT NOT NULL,
    first_chunk_id TEXT NOT NULL,
    head_chunk_id TEXT NOT NULL,
    merkle_root TEXT NOT NULL,
    first_received_unix BIGINT NOT NULL,
    last_received_unix BIGINT NOT NULL,
    state TEXT NOT NULL,
    manifest TEXT,
    signer_did TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX datasets_owner ON datasets (owner_did);
CREATE INDEX datasets_machine_topic ON datasets (machine_did, topic);
