"""The cost of finding a listing's row in SQLite's FTS5 catalog table, which every
listing create and edit does before it re-indexes the listing (issue 23).

    python3 bench/listing_index.py

Builds an FTS5 table like the market's (migrations/sqlite/0007_listings.sql) in a
temporary file, with 1,000, 10,000 and 100,000 listings of random words. At each size
it times 50 lookups of random listings in two ways:

- by `listing_id`, the FTS5 table's UNINDEXED column: what the market did before
  migration 0021 (a scan);
- through `listing_search_rows` (migration 0021, applied from the repository's file)
  and then by rowid: what it does now.
"""

import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIGRATION = REPO / "crates/sealstream-market/migrations/sqlite/0021_listing_search_rows.sql"
WORDS = "crane soil lidar gps vineyard harbour turbine moisture telemetry robot arm camera".split()


def main() -> None:
    rng = random.Random(23)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(os.path.join(tmp, "s.db"))
        db.executescript(
            "CREATE VIRTUAL TABLE listing_search USING fts5(listing_id UNINDEXED, title, description, "
            "tags, schema_hint, tokenize = 'unicode61 remove_diacritics 2');"
        )
        print("| listings | by listing_id (before) | through listing_search_rows (now) |")
        print("|---|---|---|")
        for n in (1_000, 10_000, 100_000):
            have = db.execute("SELECT count(*) FROM listing_search").fetchone()[0]
            db.executemany(
                "INSERT INTO listing_search VALUES (?,?,?,?,?)",
                [(f"id-{i:08d}", " ".join(rng.choices(WORDS, k=4)), " ".join(rng.choices(WORDS, k=20)),
                  "tag1 tag2", "") for i in range(have, n)],
            )
            db.commit()
            ids = [f"id-{rng.randrange(n):08d}" for _ in range(50)]
            t = time.perf_counter()
            for i in ids:
                db.execute("SELECT rowid FROM listing_search WHERE listing_id = ?", (i,)).fetchall()
            before = (time.perf_counter() - t) / len(ids) * 1e3
            db.execute("DROP TABLE IF EXISTS listing_search_rows")
            db.executescript(MIGRATION.read_text())
            t = time.perf_counter()
            for i in ids:
                (row,) = db.execute("SELECT fts_rowid FROM listing_search_rows WHERE listing_id = ?", (i,)).fetchone()
                db.execute("SELECT listing_id FROM listing_search WHERE rowid = ?", (row,)).fetchall()
            now = (time.perf_counter() - t) / len(ids) * 1e3
            print(f"| {n:,} | {before:.3f} ms | {now:.3f} ms |")


if __name__ == "__main__":
    main()
