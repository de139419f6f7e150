-- The catalog's answers are cached in each server process (issue 23: a text
-- search ranks every listing it matches, so at 100,000 listings one costs tens
-- of milliseconds). A cached answer is used only while this counter is what it
-- was when the answer was computed; every change to a listing or a dataset
-- moves it, in the same transaction as the change, so an answer is never
-- served after a change to what it shows has committed, whichever process
-- (replica) made the change (docs/market-design.md, "Catalog cache").
--
-- The triggers are deferred constraint triggers: they run at commit, after
-- every other statement of the transaction, so the counter's row lock is
-- taken last and held only while the transaction commits. Taken earlier, it
-- could complete a lock cycle with another writer's audit or order rows.
CREATE TABLE catalog_generation (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, n) VALUES (1, 0);
CREATE FUNCTION catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER listings_catalog_changed AFTER INSERT OR UPDATE OR DELETE ON listings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_changed();
CREATE CONSTRAINT TRIGGER datasets_catalog_changed AFTER INSERT OR UPDATE OR DELETE ON datasets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_changed();
