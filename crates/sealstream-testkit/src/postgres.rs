//! A throwaway PostgreSQL cluster for the test binary: `initdb` into a
//! temporary directory, `postgres` on a free loopback port, trust
//! authentication. As root, both run as the `postgres` user (PostgreSQL
//! refuses root). A watchdog shell stops the server and removes the
//! directory once this test process has exited.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::free_port;
use crate::server::block_on;

/// The running cluster (one per test process).
pub struct Cluster {
    port: u16,
}

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEALSTREAM_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin \
             (scripts/setup-test-peers installs them; or set SEALSTREAM_PG_BIN)"
        ),
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    assert!(out.status.success(), "no user {user} to run PostgreSQL as");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `program args…`, as the postgres user when we are root.
fn pg_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

impl Cluster {
    fn start() -> Cluster {
        let bin = bin_dir();
        let root = std::env::temp_dir().join(format!(
            "sealstream-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&root).unwrap();
        if is_root() {
            let (uid, gid) = (id_of("postgres", "-u"), id_of("postgres", "-g"));
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let data = root.join("data");
        let out = pg_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let postgres = pg_command(&bin, "postgres");
        let postgres_line = format!(
            "{} -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            command_line(&postgres),
            data.display(),
            root.display()
        );
        // The watchdog: start the server, wait for this process to end, stop
        // the server (fast shutdown), remove the cluster.
        let script = format!(
            "{postgres_line} >'{log}' 2>&1 &\n\
             while kill -0 {parent} 2>/dev/null; do sleep 1; done\n\
             pid=$(head -n 1 '{data}/postmaster.pid' 2>/dev/null)\n\
             [ -n \"$pid\" ] && kill -INT \"$pid\"\n\
             wait\n\
             rm -rf '{root}'\n",
            log = root.join("postgres.log").display(),
            parent = std::process::id(),
            data = data.display(),
            root = root.display(),
        );
        // Not waited for: it outlives this process on purpose, to clean up.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watchdog");
        let cluster = Cluster { port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = block_on(async {
                sqlx::PgConnection::connect(&cluster.admin_url())
                    .await
                    .is_ok()
            });
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; see {}",
                root.join("postgres.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::SeqCst));
        block_on(async {
            let mut c = sqlx::PgConnection::connect(&self.admin_url())
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .expect("create a test database");
            c.close().await.ok();
        });
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// A command as a shell line (arguments single-quoted).
fn command_line(c: &Command) -> String {
    let mut parts = vec![format!("'{}'", c.get_program().to_string_lossy())];
    for a in c.get_args() {
        parts.push(format!("'{}'", a.to_string_lossy()));
    }
    parts.join(" ")
}
