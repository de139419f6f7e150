-- Re-indexing a listing (on create and on every edit) deleted its FTS5 row by
-- `listing_id`, an UNINDEXED column of the FTS5 table: a scan of one row per
-- listing, so each new listing cost more than the last (3.2 ms on an empty
-- store, 34 ms at 100,000 listings; issue 23). This table maps each listing to
-- its FTS5 rowid, so the row is found by key. (PostgreSQL's search column is
-- generated in the listings row itself and needs no map.)
CREATE TABLE listing_search_rows (
    listing_id TEXT PRIMARY KEY NOT NULL,
    fts_rowid INTEGER NOT NULL
);
INSERT OR REPLACE INTO listing_search_rows (listing_id, fts_rowid)
    SELECT listing_id, rowid FROM listing_search ORDER BY rowid;
-- A listing indexed twice (never written so, but cheap to make sure) keeps one row.
DELETE FROM listing_search
    WHERE rowid NOT IN (SELECT fts_rowid FROM listing_search_rows);
