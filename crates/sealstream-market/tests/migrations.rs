//! The SQLite and the PostgreSQL migrations build the same schema.
//!
//! Both are applied as the server applies them (`Store::open`, the
//! migrations embedded in the binary), then each database is asked what it
//! holds: tables, columns (declared type, nullability), primary keys,
//! unique constraints and indexes (uniqueness, columns). Every difference
//! must be in [`ALLOWED`], with its reason; a difference that is not fails
//! the test, and so does an allowed one that is gone, so that the list
//! stays true. sqlx's own bookkeeping table (`_sqlx_migrations`, made by
//! sqlx with each engine's types) is not part of the comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sealstream_market::store::Store;
use sealstream_testkit::server::{block_on, Db};
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

/// Why the full-text search of listings differs.
const SEARCH: &str = "full-text search of listings: an FTS5 table (with the shadow tables \
                      FTS5 keeps) on SQLite, a generated tsvector column with a GIN index on \
                      PostgreSQL (0007_listings.sql); on SQLite, the map from listings to their FTS5 rows \
                      (0021_listing_search_rows.sql)";

/// The differences the two schemas may have, and why.
const ALLOWED: &[(&str, &str)] = &[
    ("table listing_search: only on sqlite", SEARCH),
    ("table listing_search_config: only on sqlite", SEARCH),
    ("table listing_search_content: only on sqlite", SEARCH),
    ("table listing_search_data: only on sqlite", SEARCH),
    ("table listing_search_docsize: only on sqlite", SEARCH),
    ("table listing_search_idx: only on sqlite", SEARCH),
    ("table listing_search_rows: only on sqlite", SEARCH),
    ("column listings.search: only on postgres", SEARCH),
    ("index listings_search: only on postgres", SEARCH),
];

/// sqlx's table of applied migrations.
const SQLX_TABLE: &str = "_sqlx_migrations";

/// A column: its declared type (lower case) and whether it refuses NULL.
#[derive(Debug, PartialEq, Eq)]
struct Column {
    ty: String,
    not_null: bool,
}

/// A table: its columns by name, its primary key (in key order) and the
/// column lists of its unique constraints.
#[derive(Debug, Default)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    unique: BTreeSet<Vec<String>>,
}

/// An index made by `CREATE INDEX` (not one backing a constraint).
#[derive(Debug, PartialEq, Eq)]
struct Index {
    table: String,
    unique: bool,
    columns: Vec<String>,
}

/// What a database holds.
#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
    indexes: BTreeMap<String, Index>,
    /// The tables that carry triggers (their names differ by engine: SQLite
    /// needs one per event, PostgreSQL takes `INSERT OR UPDATE OR DELETE`).
    triggered: BTreeSet<String>,
}

/// A new database of `db`'s engine with the market's migrations applied;
/// its URL.
fn migrated(db: Db, dir: &Path) -> String {
    let url = db.new_database(dir);
    block_on(async {
        let store = Store::open(&url).await.expect("the migrations apply");
        store.close().await;
    });
    url
}

/// Every row of `query` with its one parameter `bind`, on connection `c`.
macro_rules! all_rows {
    ($c:ident, $query:expr, $bind:expr) => {
        $query.bind($bind).fetch_all(&mut $c).await.unwrap()
    };
}

fn sqlite_schema(url: &str) -> Schema {
    block_on(async {
        let mut c = SqliteConnection::connect(url).await.expect("open SQLite");
        let mut schema = Schema::default();
        let tables: Vec<String> =
            all_rows!(c, sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> ?1",
        ), SQLX_TABLE);
        for name in tables {
            let mut table = Table::default();
            let mut key = Vec::new();
            for row in
                all_rows!(c, sqlx::query(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
            ), &name)
            {
                let column: String = row.get(0);
                let ty: String = row.get(1);
                let pk: i64 = row.get(3);
                if pk > 0 {
                    key.push((pk, column.clone()));
                }
                table.columns.insert(
                    column,
                    Column {
                        ty: ty.to_lowercase(),
                        not_null: row.get::<i64, _>(2) != 0,
                    },
                );
            }
            key.sort();
            table.primary_key = key.into_iter().map(|(_, c)| c).collect();
            let indexes = all_rows!(
                c,
                sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list(?1)"),
                &name
            );
            for row in indexes {
                let index: String = row.get(0);
                let origin: String = row.get(2);
                // An expression has no name: PostgreSQL's side lists none.
                let columns: Vec<String> = all_rows!(c, sqlx::query_scalar(
                    "SELECT name FROM pragma_index_info(?1) WHERE name IS NOT NULL ORDER BY seqno",
                ), &index);
                match origin.as_str() {
                    "c" => {
                        schema.indexes.insert(
                            index,
                            Index {
                                table: name.clone(),
                                unique: row.get::<i64, _>(1) != 0,
                                columns,
                            },
                        );
                    }
                    "u" => {
                        table.unique.insert(columns);
                    }
                    // The primary key's index: the key is read above.
                    _ => {}
                }
            }
            schema.tables.insert(name, table);
        }
        schema.triggered = all_rows!(
            c,
            sqlx::query_scalar(
                "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name <> ?1"
            ),
            SQLX_TABLE
        )
        .into_iter()
        .collect();
        c.close().await.unwrap();
        schema
    })
}

/// The column names of constraint or index keys, in key order, from an
/// `int2` key array `keys` on the table `rel` (expressions have none).
const KEY_COLUMNS: &str = "ARRAY(SELECT a.attname::text FROM unnest(%KEYS%::int2[]) \
     WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = %REL% \
     AND a.attnum = k.attnum ORDER BY k.ord)";

fn key_columns(keys: &str, rel: &str) -> String {
    KEY_COLUMNS.replace("%KEYS%", keys).replace("%REL%", rel)
}

fn postgres_schema(url: &str) -> Schema {
    block_on(async {
        let mut c = PgConnection::connect(url).await.expect("open PostgreSQL");
        let mut schema = Schema::default();
        let tables: Vec<String> = all_rows!(
            c,
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> $1",
            ),
            SQLX_TABLE
        );
        for name in tables {
            let mut table = Table::default();
            for row in all_rows!(
                c,
                sqlx::query(
                    "SELECT column_name::text, data_type::text, is_nullable::text \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
                ),
                &name
            ) {
                let nullable: String = row.get(2);
                table.columns.insert(
                    row.get(0),
                    Column {
                        ty: row.get::<String, _>(1).to_lowercase(),
                        not_null: nullable == "NO",
                    },
                );
            }
            let constraints = all_rows!(
                c,
                sqlx::query(&format!(
                    "SELECT c.contype::text, {} FROM pg_constraint c \
                 WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u')",
                    key_columns("c.conkey", "c.conrelid")
                )),
                &name
            );
            for row in constraints {
                let kind: String = row.get(0);
                let columns: Vec<String> = row.get(1);
                if kind == "p" {
                    table.primary_key = columns;
                } else {
                    table.unique.insert(columns);
                }
            }
            schema.tables.insert(name, table);
        }
        let indexes = all_rows!(
            c,
            sqlx::query(&format!(
                "SELECT i.relname::text, t.relname::text, ix.indisunique, {} \
             FROM pg_index ix \
             JOIN pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_class t ON t.oid = ix.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = 'public' AND t.relname <> $1 \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)",
                key_columns("ix.indkey", "ix.indrelid")
            )),
            SQLX_TABLE
        );
        for row in indexes {
            schema.indexes.insert(
                row.get(0),
                Index {
                    table: row.get(1),
                    unique: row.get(2),
                    columns: row.get(3),
                },
            );
        }
        schema.triggered = all_rows!(
            c,
            sqlx::query_scalar(
                "SELECT DISTINCT t.relname::text FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE n.nspname = 'public' AND NOT g.tgisinternal AND t.relname <> $1"
            ),
            SQLX_TABLE
        )
        .into_iter()
        .collect();
        c.close().await.unwrap();
        schema
    })
}

/// The names of `a` (SQLite's) and `b` (PostgreSQL's) apart: those only
/// in `a`, those only in `b`, and those in both with both values.
#[allow(clippy::type_complexity)]
fn split<'m, V>(
    a: &'m BTreeMap<String, V>,
    b: &'m BTreeMap<String, V>,
) -> (Vec<&'m str>, Vec<&'m str>, Vec<(&'m str, &'m V, &'m V)>) {
    let only_a = a.keys().filter(|n| !b.contains_key(*n)).map(String::as_str);
    let only_b = b.keys().filter(|n| !a.contains_key(*n)).map(String::as_str);
    let both = a
        .iter()
        .filter_map(|(n, x)| b.get(n).map(|y| (n.as_str(), x, y)));
    (only_a.collect(), only_b.collect(), both.collect())
}

/// Every difference between `sqlite` and `postgres`, one line each, sorted.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    fn only<S: std::fmt::Display>(what: &str, sqlite: &[S], postgres: &[S], out: &mut Vec<String>) {
        out.extend(sqlite.iter().map(|n| format!("{what} {n}: only on sqlite")));
        out.extend(
            postgres
                .iter()
                .map(|n| format!("{what} {n}: only on postgres")),
        );
    }
    let mut out = Vec::new();
    let (only_sqlite, only_postgres, both) = split(&sqlite.tables, &postgres.tables);
    only("table", &only_sqlite, &only_postgres, &mut out);
    for (table, a, b) in both {
        let (only_sqlite, only_postgres, both) = split(&a.columns, &b.columns);
        let qualified = |names: Vec<&str>| -> Vec<String> {
            names.iter().map(|c| format!("{table}.{c}")).collect()
        };
        only(
            "column",
            &qualified(only_sqlite),
            &qualified(only_postgres),
            &mut out,
        );
        for (column, x, y) in both {
            if x != y {
                out.push(format!(
                    "column {table}.{column}: {x:?} on sqlite, {y:?} on postgres"
                ));
            }
        }
        if a.primary_key != b.primary_key {
            out.push(format!(
                "table {table}: primary key {:?} on sqlite, {:?} on postgres",
                a.primary_key, b.primary_key
            ));
        }
        if a.unique != b.unique {
            out.push(format!(
                "table {table}: unique {:?} on sqlite, {:?} on postgres",
                a.unique, b.unique
            ));
        }
    }
    let only_sqlite: Vec<_> = sqlite.triggered.difference(&postgres.triggered).collect();
    let only_postgres: Vec<_> = postgres.triggered.difference(&sqlite.triggered).collect();
    only("triggers on", &only_sqlite, &only_postgres, &mut out);
    let (only_sqlite, only_postgres, both) = split(&sqlite.indexes, &postgres.indexes);
    only("index", &only_sqlite, &only_postgres, &mut out);
    for (index, x, y) in both {
        if x != y {
            out.push(format!("index {index}: {x:?} on sqlite, {y:?} on postgres"));
        }
    }
    out.sort();
    out
}

#[test]
fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_schema(&migrated(Db::Sqlite, dir.path()));
    let postgres = postgres_schema(&migrated(Db::Postgres, dir.path()));
    assert!(
        sqlite.tables.contains_key("listings") && postgres.tables.contains_key("listings"),
        "the schemas were read: {sqlite:?} {postgres:?}"
    );
    for schema in [&sqlite, &postgres] {
        // The catalog cache's generation moves with every listing and dataset change.
        assert!(
            schema.triggered.contains("listings") && schema.triggered.contains("datasets"),
            "triggers read: {:?}",
            schema.triggered
        );
    }
    let found: BTreeSet<String> = differences(&sqlite, &postgres).into_iter().collect();
    let allowed: BTreeSet<String> = ALLOWED.iter().map(|(d, _)| d.to_string()).collect();
    let drift: Vec<_> = found.difference(&allowed).collect();
    let gone: Vec<_> = allowed.difference(&found).collect();
    assert!(
        drift.is_empty(),
        "the SQLite and PostgreSQL migrations drifted apart (make them agree, or add the \
         difference to ALLOWED with its reason):\n{}",
        drift
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        gone.is_empty(),
        "allowed differences no longer there (remove them from ALLOWED): {gone:?}"
    );
}

#[test]
fn both_engines_have_the_same_migration_files() {
    let names = |engine: &str| -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(engine);
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "every migration is written for both engines, under the same number and name"
    );
}

/// The comparison itself finds what it is for: a column, a nullability, a
/// type, a key and an index that differ.
#[test]
fn differences_are_found() {
    // One table `t` and one index `t_n` on it.
    let schema = |columns: &[(&str, &str, bool)], key: &[&str], unique_index: bool| {
        let mut schema = Schema::default();
        let table = Table {
            columns: columns
                .iter()
                .map(|(n, t, not_null)| {
                    let column = Column {
                        ty: t.to_string(),
                        not_null: *not_null,
                    };
                    (n.to_string(), column)
                })
                .collect(),
            primary_key: key.iter().map(|s| s.to_string()).collect(),
            unique: BTreeSet::new(),
        };
        schema.tables.insert("t".into(), table);
        let index = Index {
            table: "t".into(),
            unique: unique_index,
            columns: vec!["n".into()],
        };
        schema.indexes.insert("t_n".into(), index);
        schema
    };
    let a = schema(
        &[
            ("id", "text", true),
            ("n", "bigint", true),
            ("x", "text", false),
        ],
        &["id"],
        false,
    );
    let b = schema(
        &[
            ("id", "text", true),
            ("n", "text", false),
            ("y", "text", false),
        ],
        &["id", "n"],
        true,
    );
    assert_eq!(differences(&a, &a), Vec::<String>::new());
    let found = differences(&a, &b);
    let has = |text: &str| found.iter().any(|d| d.starts_with(text));
    assert!(has("column t.x: only on sqlite"), "{found:?}");
    assert!(has("column t.y: only on postgres"), "{found:?}");
    assert!(
        has("column t.n: Column { ty: \"bigint\", not_null: true } on sqlite"),
        "{found:?}"
    );
    assert!(has("table t: primary key"), "{found:?}");
    assert!(has("index t_n: Index"), "{found:?}");
    assert_eq!(found.len(), 5, "{found:?}");
}
