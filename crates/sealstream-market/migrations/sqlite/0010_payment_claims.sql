-- Payment claims (issue 14; docs/market-design.md, "Payments").
--
-- Every transaction anyone posted as paying an order is kept on its own
-- row, instead of the one `orders.claimed_tx` a later claim replaced. The
-- payment watcher checks open claims (`unknown`, `pending`) oldest-checked
-- first (`check_seq`), a bounded number per sweep; a hash the node does not
-- know expires. States: unknown (the node does not know the transaction),
-- pending (known, valid so far, not mined or not deep enough), confirmed
-- (it paid the order), rejected (it does not pay the order: `reason`),
-- expired (unknown too long), superseded (the order was paid otherwise or
-- cancelled).
CREATE TABLE payment_claims (
    order_id TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    chain_id BIGINT NOT NULL,
    claimed_at TEXT NOT NULL,
    last_checked_at TEXT,
    checks BIGINT NOT NULL DEFAULT 0,
    check_seq BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    reason TEXT,
    confirmations BIGINT,
    PRIMARY KEY (order_id, tx_hash)
);
CREATE INDEX payment_claims_sweep ON payment_claims (state, check_seq);

-- Existing claims carried over: a claim still open is checked first
-- (`check_seq` 0, never checked under this schema); the claim of an order
-- no longer awaiting payment is closed; a refused claim ("<hash>: <why>"
-- in `claim_status`) is kept as rejected.
INSERT INTO payment_claims (order_id, tx_hash, chain_id, claimed_at, state, reason)
SELECT id, claimed_tx, COALESCE(CAST(json_extract(rail, '$.chainId') AS BIGINT), 0),
       strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
       CASE WHEN state = 'awaiting-payment' THEN 'unknown' ELSE 'superseded' END,
       CASE WHEN state = 'awaiting-payment' THEN 'carried over by the upgrade; not checked since'
            ELSE 'the order is no longer awaiting payment' END
FROM orders WHERE claimed_tx IS NOT NULL;

INSERT INTO payment_claims (order_id, tx_hash, chain_id, claimed_at, last_checked_at, checks, state, reason)
SELECT id, substr(claim_status, 1, 66), COALESCE(CAST(json_extract(rail, '$.chainId') AS BIGINT), 0),
       strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 1,
       'rejected', substr(claim_status, 69)
FROM orders
WHERE claimed_tx IS NULL AND claim_status LIKE '0x%' AND length(claim_status) > 68
  AND substr(claim_status, 67, 2) = ': ';

DROP INDEX orders_claims;
ALTER TABLE orders DROP COLUMN claimed_tx;
ALTER TABLE orders DROP COLUMN claim_status;
