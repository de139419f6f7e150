//! A real MQTT broker for tests: Debian's mosquitto (`apt-get install
//! mosquitto`; `scripts/setup-test-peers` does it), anonymous, without
//! persistence, on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{free_port, wait};

/// Where Debian installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A running mosquitto broker; stopped when dropped.
pub struct Broker {
    /// The port it listens on (kept across [`restart`](Self::restart)).
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker on a free port, its configuration and log in `dir`.
    pub fn start(dir: &Path) -> Broker {
        let mut b = Broker {
            port: free_port(),
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
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest file {}\n",
                self.port,
                self.dir.join("mosquitto.log").display()
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait::until("mosquitto to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
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
