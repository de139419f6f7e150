-- Receipts with selective disclosure (sealstream.receipt.v2, issue 21): the
-- same receipt, its fields salted and committed to one by one, signed with
-- the receipt key, stored beside the v1 document (JSON text as served).
-- Receipts issued before this migration have none.
ALTER TABLE receipts ADD COLUMN receipt_v2 TEXT;
