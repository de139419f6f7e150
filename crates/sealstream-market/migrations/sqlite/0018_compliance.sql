-- Compliance presets (issue 21): a dataset listing's preset (allowed buyer
-- jurisdictions, data classes, retention notice, attestation; JSON, as
-- normalised) and, on each order of such a listing, what the buyer
-- accepted (the preset, its hash, the buyer's jurisdiction and purpose),
-- which the order's receipt records.
ALTER TABLE listings ADD COLUMN compliance TEXT;
ALTER TABLE orders ADD COLUMN compliance TEXT;
