-- Escrowed payments (issue 21 part 5; docs/market-design.md "Escrow"): one
-- row per order whose payment is held until its dispute window passes.
-- EVM rail: the deposit into the escrow contract on `chain_id` at
-- `contract` under `order_key` (keccak256 of the order id), `release_after`
-- the end of the window by the chain's clock (Unix seconds), and while
-- disputed the arbitration deadline. Invoice rail: the same states kept by
-- the server alone (no chain, the server's clock). The buyer's evidence is
-- kept as posted with its SHA-256 (`evidence_hash`, also sent on chain) and
-- the checker's verdict (`evidence_valid` NULL until checked, 1 valid, 0
-- not, with its reason); `to_buyer`/`to_seller` record the decided split,
-- `settle_tx` the release or resolve transaction.
CREATE TABLE escrows (
    order_id TEXT PRIMARY KEY NOT NULL REFERENCES orders (id),
    rail TEXT NOT NULL,
    chain_id BIGINT,
    contract TEXT,
    order_key TEXT NOT NULL,
    amount TEXT NOT NULL,
    state TEXT NOT NULL,
    release_after BIGINT NOT NULL,
    deposit_tx TEXT,
    evidence TEXT,
    evidence_hash TEXT,
    evidence_valid BIGINT,
    evidence_reason TEXT,
    to_buyer TEXT,
    to_seller TEXT,
    decided_by TEXT,
    settle_tx TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX escrows_due ON escrows (state, release_after);
