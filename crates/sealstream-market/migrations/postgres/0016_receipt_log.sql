-- The receipt log (issue 21; docs/formats.md "Receipt log"): every receipt
-- is appended to the market's log and to its seller's, a Merkle tree whose
-- nodes carry Pedersen commitments to the amounts below them. One row per
-- log (its size, the epoch of its last leaf and its epoch length, fixed at
-- its first leaf) and one per leaf with its opening: the amount, currency
-- and blinding stay here; proofs show only hashes and commitments.
CREATE TABLE receipt_logs (
    log_id TEXT PRIMARY KEY NOT NULL,
    epoch_seconds BIGINT NOT NULL,
    size BIGINT NOT NULL,
    last_epoch BIGINT NOT NULL
);
CREATE TABLE receipt_log_leaves (
    log_id TEXT NOT NULL REFERENCES receipt_logs (log_id),
    idx BIGINT NOT NULL,
    order_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    receipt_digest TEXT NOT NULL,
    commitment TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount TEXT NOT NULL,
    blinding TEXT NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE INDEX receipt_log_leaves_order ON receipt_log_leaves (order_id);
