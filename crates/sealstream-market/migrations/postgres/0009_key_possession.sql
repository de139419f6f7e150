-- Issue 14, item 3: a registration proves possession of the chain key too
-- (its Ed25519 signature over the same statement; NULL for machines
-- registered before), a chain key belongs to one machine only, and a chunk
-- id is held once in the whole market (a chunk is signed by one chain key,
-- so the same chunk under another machine is a copy). A database holding
-- such copies already fails this migration: remove them first.
ALTER TABLE machines ADD COLUMN chain_key_signature TEXT;
CREATE UNIQUE INDEX machines_chain_public_key ON machines (chain_public_key);
CREATE UNIQUE INDEX chunks_chunk_id ON chunks (chunk_id);
