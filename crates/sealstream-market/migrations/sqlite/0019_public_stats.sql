-- Delayed public statistics (issue 21, anti-correlation): the sales count
-- the public sees (as a bucket) is refreshed by a background job from the
-- orders paid before now minus `--public-stats-delay`, so a sale does not
-- show in public numbers when it happens. `sales_count` stays the exact
-- count. Sales recorded before this migration are public at once.
ALTER TABLE listings ADD COLUMN public_sales BIGINT NOT NULL DEFAULT 0;
UPDATE listings SET public_sales = sales_count;
