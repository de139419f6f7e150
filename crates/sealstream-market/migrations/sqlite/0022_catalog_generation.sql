-- The catalog's answers are cached in each server process (issue 23: a text
-- search ranks every listing it matches, so at 100,000 listings one costs tens
-- of milliseconds). A cached answer is used only while this counter is what it
-- was when the answer was computed; every change to a listing or a dataset
-- moves it, in the same transaction as the change, so an answer is never
-- served after a change to what it shows has committed, whichever process
-- (replica) made the change (docs/market-design.md, "Catalog cache").
CREATE TABLE catalog_generation (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, n) VALUES (1, 0);
CREATE TRIGGER listings_catalog_insert AFTER INSERT ON listings
BEGIN UPDATE catalog_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER listings_catalog_update AFTER UPDATE ON listings
BEGIN UPDATE catalog_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER listings_catalog_delete AFTER DELETE ON listings
BEGIN UPDATE catalog_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER datasets_catalog_insert AFTER INSERT ON datasets
BEGIN UPDATE catalog_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER datasets_catalog_update AFTER UPDATE ON datasets
BEGIN UPDATE catalog_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER datasets_catalog_delete AFTER DELETE ON datasets
BEGIN UPDATE catalog_generation SET n = n + 1 WHERE id = 1; END;
