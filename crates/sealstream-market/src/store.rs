//! The store: one schema on two engines, SQLite (a file under the data
//! directory, the default) and PostgreSQL. Migrations run at open.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Transaction};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database engine behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// SQLite (`sqlite://…`).
    Sqlite,
    /// PostgreSQL (`postgres://…` or `postgresql://…`).
    Postgres,
}

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported engine.
    #[error("unsupported database URL (expected sqlite://… or postgres://…): {0}")]
    UnsupportedUrl(String),
    /// The database refused or failed a query.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Why a resource's database access failed (the `db` module beside each
/// resource): the database itself, or stored rows that break what the
/// schema and the server promise (the database was changed behind the
/// server). Handlers answer both with a 500; the second names its
/// `context` (`order`, `payment claim`, …).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database refused or failed a query.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value or row is not what it must be.
    #[error("{context}: {message}")]
    Inconsistent {
        /// What was being read (shown in the 500's message).
        context: &'static str,
        /// What is wrong (logged only).
        message: String,
    },
}

impl DbError {
    /// A stored value or row that is not what it must be.
    pub fn inconsistent(context: &'static str, message: impl Into<String>) -> DbError {
        DbError::Inconsistent {
            context,
            message: message.into(),
        }
    }
}

/// A transaction on the store, as the `db` modules take it.
pub type Tx = Transaction<'static, Any>;

/// PostgreSQL's clock in Unix seconds with a fraction (`clock_timestamp`,
/// not the transaction's start), for [`now_seconds_sql`] and
/// [`PG_NOW_MICROS_SQL`].
macro_rules! pg_epoch {
    () => {
        "EXTRACT(EPOCH FROM clock_timestamp())"
    };
}

/// The database's clock as SQL, in whole Unix seconds (read when the
/// statement runs): what leases compare, so that replicas whose own
/// clocks differ agree on an expiry.
pub(crate) fn now_seconds_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "CAST(strftime('%s', 'now') AS BIGINT)",
        Engine::Postgres => concat!("CAST(", pg_epoch!(), " AS BIGINT)"),
    }
}

/// PostgreSQL's clock as SQL, in Unix microseconds (read when the
/// statement runs): the shared rate buckets' time.
pub(crate) const PG_NOW_MICROS_SQL: &str = concat!("CAST(", pg_epoch!(), " * 1000000 AS BIGINT)");

/// Whether `tx` is on PostgreSQL (where a read takes no lock, and a row a
/// transaction reads to change must be locked with `FOR UPDATE`; on SQLite
/// [`Store::begin`] already holds the one write lock).
pub(crate) fn is_postgres(tx: &Tx) -> bool {
    tx.backend_name().eq_ignore_ascii_case("postgresql")
}

/// A statement with its parameters bound, ready to run.
pub type Statement<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Runs `statement` inside `tx`; returns how many rows it changed.
pub async fn changed(tx: &mut Tx, statement: Statement<'_>) -> Result<u64, sqlx::Error> {
    Ok(statement.execute(&mut **tx).await?.rows_affected())
}

/// Placeholders of a list: `count` parameters numbered from `$first`, as
/// `$3, $4, $5` (for an `IN (…)`).
pub fn placeholder_list(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders of a multi-row statement: `rows` tuples of `cols`
/// parameters numbered from `$first`, as `($3, $4), ($5, $6)` — for a
/// `VALUES` list that both engines read the same way. Callers keep
/// `rows × cols` well below the engines' limits on parameters (32,766 on
/// SQLite, 65,535 on PostgreSQL).
pub fn placeholders(rows: usize, cols: usize, first: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholder_list(cols, first + r * cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored count or index (`BIGINT`) as `u64`; a negative one is
/// [`DbError::Inconsistent`], `stored {what} is negative`.
pub fn stored_u64(value: i64, context: &'static str, what: &str) -> Result<u64, DbError> {
    u64::try_from(value)
        .map_err(|_| DbError::inconsistent(context, format!("stored {what} is negative")))
}

/// A connection pool on the market database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
}

impl Store {
    /// Opens `sqlite://PATH` (the file is created if missing and put in WAL
    /// mode; `sqlite::memory:` for a private in-memory database) or
    /// `postgres://…`, and brings the schema up to date.
    pub async fn open(database_url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = engine_of(database_url)?;
        let mut url = database_url.to_string();
        let mut max_connections = 8;
        if engine == Engine::Sqlite {
            if database_url.contains(":memory:") {
                // Every connection to :memory: is its own database: keep one.
                max_connections = 1;
            } else if !database_url.contains("mode=") {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // A local file does not drop its connections: no ping before
            // each use (a round trip per transaction). PostgreSQL's may
            // drop across a network, so they are tested.
            .test_before_acquire(engine != Engine::Sqlite)
            .connect_with(options)
            .await?;
        if engine == Engine::Sqlite && max_connections > 1 {
            // Persistent in the file: readers no longer block the writer.
            sqlx::query("PRAGMA journal_mode=WAL")
                .fetch_optional(&pool)
                .await?;
        }
        let migrator = match engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Store { pool, engine })
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction. On SQLite it is `BEGIN IMMEDIATE`: the write
    /// lock is taken at the start, waiting up to the busy timeout, so two
    /// transactions that read then write can't meet a stale snapshot
    /// (`SQLITE_BUSY_SNAPSHOT`, which no timeout retries).
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.begin_sqlx().await?)
    }

    /// [`Store::begin`] with the driver's error, for callers whose error
    /// types wrap `sqlx::Error`.
    pub async fn begin_sqlx(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
    }

    /// Starts a transaction that only reads. On SQLite it is a deferred
    /// `BEGIN`: in WAL mode it reads a snapshot without taking the write
    /// lock, so readers run beside each other and beside the writer (a
    /// transaction from [`Store::begin`] holds the lock from its start). On
    /// PostgreSQL it is `READ ONLY`: a write in it is refused.
    pub async fn begin_read(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN").await?,
            Engine::Postgres => self.pool.begin_with("BEGIN READ ONLY").await?,
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use. On SQLite the
    /// write-ahead log is first folded into the database file, so that a
    /// stopped server leaves one self-contained `market.db` (a copy of that
    /// file alone is then a complete copy of the market).
    pub async fn close(&self) {
        if self.engine == Engine::Sqlite {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_optional(&self.pool)
                .await
            {
                tracing::warn!("cannot fold the SQLite write-ahead log into the database: {e}");
            }
        }
        self.pool.close().await;
    }
}

fn engine_of(url: &str) -> Result<Engine, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Engine::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Engine::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// Test helpers for statements that only PostgreSQL shows the plans of.
#[cfg(test)]
pub(crate) mod test_postgres {
    use super::*;

    /// A store on a new database of the test PostgreSQL cluster, and a
    /// runtime to use it in (the cluster is started outside any runtime).
    pub(crate) fn store() -> (tokio::runtime::Runtime, Store) {
        let url = sealstream_testkit::postgres::cluster().new_database();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        let store = runtime.block_on(Store::open(&url)).expect("the store");
        (runtime, store)
    }

    /// PostgreSQL's generic plan (the text of `EXPLAIN`) of `sql` prepared
    /// on one connection of `store` and run with `args` (SQL literals,
    /// comma-separated): the plan a statement reused by the pool gets,
    /// whatever its parameters.
    pub(crate) async fn generic_plan(store: &Store, sql: &str, args: &str) -> String {
        let mut c = store.pool().acquire().await.expect("a connection");
        for statement in [
            "SET plan_cache_mode = force_generic_plan".to_string(),
            format!("PREPARE planned AS {sql}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut *c)
                .await
                .expect("PREPARE");
        }
        let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE planned({args})"))
            .fetch_all(&mut *c)
            .await
            .expect("EXPLAIN");
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_from_first() {
        assert_eq!(placeholders(2, 2, 3), "($3, $4), ($5, $6)");
        assert_eq!(placeholders(1, 3, 1), "($1, $2, $3)");
        assert_eq!(placeholders(0, 3, 1), "");
        assert_eq!(placeholder_list(3, 2), "$2, $3, $4");
    }

    #[tokio::test]
    async fn opens_a_new_sqlite_file_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("market.db").display());
        let store = Store::open(&url).await.unwrap();
        store.ping().await.unwrap();
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        store.close().await;
        // Reopening runs no migration twice.
        Store::open(&url).await.unwrap().close().await;
    }

    /// Transactions that read then write, run concurrently on the pool,
    /// all commit: none meets a stale WAL snapshot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_read_then_write_transactions_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("market.db").display());
        let store = Store::open(&url).await.unwrap();
        sqlx::query("CREATE TABLE counter (n BIGINT NOT NULL)")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO counter (n) VALUES (0)")
            .execute(store.pool())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut tx = store.begin().await?;
                    let (n,): (i64,) = sqlx::query_as("SELECT n FROM counter")
                        .fetch_one(&mut *tx)
                        .await?;
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    sqlx::query("UPDATE counter SET n = $1")
                        .bind(n + 1)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok::<(), StoreError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let (n,): (i64,) = sqlx::query_as("SELECT n FROM counter")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 32);
        store.close().await;
    }

    #[tokio::test]
    async fn rejects_other_urls() {
        assert!(matches!(
            Store::open("mysql://x").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}
