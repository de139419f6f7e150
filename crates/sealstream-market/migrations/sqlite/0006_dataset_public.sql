-- Datasets, continued (src/datasets): `public` (0/1) is set when a listing of
-- the dataset is published, and makes its manifest, inclusion proofs and
-- envelopes readable by anyone; `chain_public_key` is the chain key the
-- dataset was computed against (the manifest's chainPublicKeyHex).
ALTER TABLE datasets ADD COLUMN public BIGINT NOT NULL DEFAULT 0;
ALTER TABLE datasets ADD COLUMN chain_public_key TEXT NOT NULL DEFAULT '';
