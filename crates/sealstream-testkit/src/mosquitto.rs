//! A real MQTT broker for tests: Debian's mosquitto (`apt-get install
//! mosquitto`; `scripts/setup-test-peers` does it), anonymous, without
//! persistence, on a free loopback port; optionally with a second listener
//! on TLS, its certificate issued by a test certificate authority made
//! with the `openssl` command ([`Authority`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{free_port, wait};

/// Where Debian installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A running mosquitto broker; stopped when dropped.
pub struct Broker {
    /// The port it listens on (kept across [`restart`](Self::restart)).
    pub port: u16,
    /// The TLS listener, when started with [`start_with_tls`](Self::start_with_tls).
    pub tls: Option<TlsListener>,
    dir: PathBuf,
    child: Option<Child>,
}

/// A broker's TLS listener.
pub struct TlsListener {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The authority that issued its certificate (for `localhost` and
    /// `127.0.0.1`): clients that trust it can connect.
    pub authority: Authority,
    cert: PathBuf,
    key: PathBuf,
}

impl Broker {
    /// Starts a broker on a free port, its configuration and log in `dir`.
    pub fn start(dir: &Path) -> Broker {
        let mut b = Broker {
            port: free_port(),
            tls: None,
            dir: dir.to_path_buf(),
            child: None,
        };
        b.spawn();
        b
    }

    /// Starts a broker as [`start`](Self::start) does, with a second
    /// listener on TLS ([`Broker::tls`]): a certificate for `localhost` and
    /// `127.0.0.1` issued by a new test authority. Both listeners share the
    /// broker's topics.
    pub fn start_with_tls(dir: &Path) -> Broker {
        let authority = Authority::new(dir, "broker-ca");
        let (cert, key) = authority.issue_server_certificate("broker");
        let mut b = Broker {
            port: free_port(),
            tls: Some(TlsListener {
                port: free_port(),
                authority,
                cert,
                key,
            }),
            dir: dir.to_path_buf(),
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let bin = Path::new(MOSQUITTO);
        assert!(
            bin.exists(),
            "mosquitto is not installed (apt-get install mosquitto; scripts/setup-test-peers does it)"
        );
        let conf = self.dir.join("mosquitto.conf");
        // `user root`: started as root (as CI is), mosquitto would otherwise
        // switch to its own user, which can read neither the test's
        // directory (its log, the TLS key) nor anything in it. Started as
        // another user, it stays that user whatever this says.
        let mut text = format!(
            "user root\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest file {}\n",
            self.port,
            self.dir.join("mosquitto.log").display()
        );
        if let Some(tls) = &self.tls {
            text.push_str(&format!(
                "listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                tls.port,
                tls.cert.display(),
                tls.key.display()
            ));
        }
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let ports = [Some(self.port), self.tls.as_ref().map(|t| t.port)];
        for port in ports.into_iter().flatten() {
            wait::until("mosquitto to listen", || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
    }

    /// Stops the broker (SIGKILL); [`restart`](Self::restart) starts it
    /// again.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A certificate authority for tests: a self-signed P-256 certificate and
/// its key, made by the `openssl` command in a directory of the test's.
pub struct Authority {
    /// The authority's certificate (PEM): what a client is told to trust.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

impl Authority {
    /// A new authority named `name` (its common name and file names), in
    /// `dir`.
    pub fn new(dir: &Path, name: &str) -> Authority {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            path_arg(&key),
            "-out",
            path_arg(&cert),
        ]);
        Authority {
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1` issued by this
    /// authority: (certificate, key), PEM files named after `name`.
    pub fn issue_server_certificate(&self, name: &str) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}.key"));
        let request = self.dir.join(format!("{name}.csr"));
        let extensions = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &extensions,
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("write the certificate's extensions");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            path_arg(&key),
            "-out",
            path_arg(&request),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_arg(&request),
            "-CA",
            path_arg(&self.cert),
            "-CAkey",
            path_arg(&self.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            path_arg(&extensions),
            "-out",
            path_arg(&cert),
        ]);
        (cert, key)
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// Runs `openssl args…`; panics with its output when it fails.
fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install openssl; scripts/setup-test-peers does it)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
