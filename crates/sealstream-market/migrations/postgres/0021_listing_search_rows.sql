-- SQLite only: the map from listings to the rows of SQLite's FTS5 table
-- (see migrations/sqlite/0021_listing_search_rows.sql). PostgreSQL's search
-- column is generated in the listings row itself and needs no map; this
-- migration keeps the two engines' migrations under the same numbers.
SELECT 1;
