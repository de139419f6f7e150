//! Headless Chromium for the tests of the market's web pages, driven
//! through Debian's chromedriver (`apt-get install chromium
//! chromium-driver`; `scripts/setup-test-peers` does it) with fantoccini,
//! over plain HTTP on 127.0.0.1 (no TLS stack).
//!
//! - [`Browser::start`] starts chromedriver on a free port, in its own
//!   process group, and opens a session with a fresh profile (a 0700
//!   temporary directory). Dropping the [`Browser`] kills the whole group:
//!   chromedriver and every Chromium process it started, even when the test
//!   panicked before [`Browser::close`].
//! - Chromium resolves no name but `localhost` and `127.0.0.1`
//!   (`--host-resolver-rules`): the browser's own background traffic
//!   (updates, sign-in, the default search engine) goes nowhere, and a page
//!   that refers to another host fails to load it. Pages must be loaded from
//!   `http://127.0.0.1:PORT` (a [`TestServer`](crate::server::TestServer)'s
//!   `base`): WebCrypto exists only in a secure context, and plain HTTP is
//!   one only on loopback.
//! - What a page test checks: [`Browser::set_viewport`] (exact sizes, by
//!   CDP device-metrics emulation), [`Browser::snapshot`] (PNG into
//!   [`Browser::screenshots_dir`]), [`Browser::assert_no_horizontal_overflow`],
//!   [`Browser::foreign_requests`], [`Browser::console_log`],
//!   [`Browser::inject_on_new_document`], and any CDP command
//!   ([`Browser::cdp`]). Everything else is fantoccini's
//!   [`Client`](fantoccini::Client) ([`Browser::client`]).
//!
//! A missing Chromium or chromedriver fails the test with a message saying
//! to run `scripts/setup-test-peers`; the tests never skip silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::free_port;

/// The WebDriver client the harness drives (its `Locator`, `key::Key`,
/// elements), for tests that take the kit only.
pub use fantoccini;

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian installs chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The `--host-resolver-rules` Chromium runs with: every name but
/// `localhost` and `127.0.0.1` fails to resolve.
pub const HOST_RESOLVER_RULES: &str = "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1";

/// The page's width against its viewport's, and the first elements that
/// reach past the viewport's right edge.
const OVERFLOW_JS: &str = r#"
const w = window.innerWidth;
const spills = [];
for (const e of document.body.querySelectorAll('*')) {
  const r = e.getBoundingClientRect();
  const visible = getComputedStyle(e).overflowX === 'visible';
  if (r.right > w + 0.5 || (visible && e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)) {
    spills.push(e);
  }
}
// The innermost ones: the element that is too wide, not its ancestors.
const wide = spills.filter((e) => !spills.some((o) => o !== e && e.contains(o))).slice(0, 8)
  .map((e) => {
    const classes = typeof e.className === 'string' && e.className.trim()
      ? '.' + e.className.trim().split(/\s+/).join('.') : '';
    const r = e.getBoundingClientRect();
    return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + classes
      + ' (right edge ' + Math.round(r.left + e.scrollWidth) + ': "'
      + (e.textContent || '').trim().slice(0, 40) + '")';
  });
return {page: location.pathname + location.search,
        scrollWidth: document.documentElement.scrollWidth, innerWidth: w, wide};
"#;

/// How long [`Browser::wait_until`] waits.
pub const WAIT: Duration = Duration::from_secs(15);

/// Why a browser step failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// chromedriver did not start or did not listen.
    #[error("chromedriver: {0}")]
    Driver(String),
    /// chromedriver refused a new session (Chromium did not start).
    #[error("new browser session: {0}")]
    Session(#[from] NewSessionError),
    /// A WebDriver command failed.
    #[error("browser command: {0}")]
    Command(#[from] CmdError),
    /// A file (a screenshot) could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A condition did not hold in time, or an answer was not what the
    /// browser should give.
    #[error("{0}")]
    Page(String),
}

/// What the browser steps return.
pub type Result<T, E = BrowserError> = std::result::Result<T, E>;

/// A headless Chromium session; chromedriver and Chromium are killed when
/// it is dropped.
pub struct Browser {
    client: Client,
    screenshots: PathBuf,
    driver: Driver,
}

/// chromedriver in its own process group, and the profile directory of
/// the Chromium it starts: the group is killed on drop, then the
/// directory removed.
struct Driver {
    child: Child,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use nix::sys::signal::{killpg, Signal};
            use nix::unistd::Pid;
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // The group chromedriver leads (process_group(0)): it and
                // every Chromium process it started.
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.profile;
    }
}

/// `POST /session/{id}/goog/cdp/execute`: chromedriver's passthrough to the
/// Chrome DevTools Protocol.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

/// `POST /session/{id}/se/log {"type": "browser"}`: the browser's console
/// entries since the last read (`goog:loggingPrefs`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The screenshot directory of the test `test`:
/// `$SEALSTREAM_SCREENSHOTS/<test>`, else
/// `<target dir>/browser-screenshots/<test>` (`$CARGO_TARGET_DIR`, else
/// the repository's `target/`). `::` in the name becomes `-`.
pub fn screenshots_dir_for(test: &str) -> PathBuf {
    let base = match std::env::var_os("SEALSTREAM_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::repo_root().join("target"))
            .join("browser-screenshots"),
    };
    let name: String = test
        .replace("::", "-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join(name)
}

/// The name of the running test (libtest names each test's thread after
/// it), or `browser` outside a test thread.
fn current_test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("browser")
        .to_string()
}

fn require_installed() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser tests need Chromium and chromedriver \
             (run scripts/setup-test-peers, or apt-get install chromium chromium-driver; \
             package {package})"
        );
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (1280x800
    /// window). Panics when Chromium or chromedriver is not installed
    /// (`scripts/setup-test-peers`). Call inside a tokio runtime (the
    /// session's connection runs on it), e.g. the test kit's
    /// [`block_on`](crate::server::block_on).
    pub async fn start() -> Result<Browser> {
        require_installed();
        let profile = tempfile::Builder::new()
            .prefix("sealstream-chromium-")
            .tempdir()
            .map_err(|e| BrowserError::Driver(format!("a profile directory: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(profile.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|source| BrowserError::File {
                    path: profile.path().to_path_buf(),
                    source,
                })?;
        }
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: Drop kills chromedriver and every
            // Chromium process under it at once.
            command.process_group(0);
        }
        let child = command
            .spawn()
            .map_err(|e| BrowserError::Driver(format!("{CHROMEDRIVER}: {e}")))?;
        let mut driver = Driver { child, profile };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(BrowserError::Driver(format!("exited at start: {status}")));
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Driver(format!(
                    "not listening on port {port} after {WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", driver.profile.path().display()),
                    "--window-size=1280,800",
                    format!("--host-resolver-rules={HOST_RESOLVER_RULES}"),
                ]
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await?;
        Ok(Browser {
            client,
            screenshots: screenshots_dir_for(&current_test_name()),
            driver,
        })
    }

    /// The WebDriver client: navigation, elements, keys, scripts.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The directory [`snapshot`](Self::snapshot) writes to
    /// ([`screenshots_dir_for`] the running test); print it so that a
    /// reader finds the pictures.
    pub fn screenshots_dir(&self) -> &Path {
        &self.screenshots
    }

    /// The session's profile (Chromium's `--user-data-dir`): a fresh 0700
    /// temporary directory, removed when the browser is dropped.
    pub fn profile_dir(&self) -> &Path {
        self.driver.profile.path()
    }

    /// chromedriver's process id; it leads the process group of every
    /// Chromium process of the session.
    pub fn driver_pid(&self) -> u32 {
        self.driver.child.id()
    }

    /// Runs the CDP command `cmd` with `params` (chromedriver's
    /// passthrough); its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        Ok(self
            .client
            .issue_cmd(Cdp {
                cmd: cmd.to_string(),
                params,
            })
            .await?)
    }

    /// Runs `js` in every document loaded from now on, before the page's
    /// own scripts (CDP `Page.addScriptToEvaluateOnNewDocument`; the
    /// page's Content-Security-Policy does not apply to it).
    pub async fn inject_on_new_document(&self, js: &str) -> Result<()> {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": js }),
        )
        .await?;
        Ok(())
    }

    /// Makes the page's viewport exactly `width` x `height` CSS pixels at
    /// device scale 1 (CDP `Emulation.setDeviceMetricsOverride`, as a
    /// desktop browser: `mobile: false`, so the layout viewport does not
    /// grow to fit a page that overflows).
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<()> {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        Ok(())
    }

    /// A PNG of the viewport written to `path` (its directory created);
    /// its width and height in pixels.
    pub async fn screenshot(&self, path: &Path) -> Result<(u32, u32)> {
        let png = self.client.screenshot().await?;
        let size = png_size(&png)
            .ok_or_else(|| BrowserError::Page("the screenshot is not a PNG".into()))?;
        let file = |source| BrowserError::File {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(file)?;
        }
        std::fs::write(path, &png).map_err(file)?;
        Ok(size)
    }

    /// A PNG of the viewport as `<screenshots_dir>/<name>.png`; its path.
    pub async fn snapshot(&self, name: &str) -> Result<PathBuf> {
        let path = self.screenshots.join(format!("{name}.png"));
        self.screenshot(&path).await?;
        Ok(path)
    }

    /// Runs `js` (a function body: `return …;`) in the page; its result.
    pub async fn js(&self, js: &str) -> Result<Value> {
        Ok(self.client.execute(js, Vec::new()).await?)
    }

    /// Waits until the expression `expr` is truthy in the page (checked
    /// every 25 ms, at most [`WAIT`]); its value. The error names `expr`
    /// and its last value.
    pub async fn wait_until(&self, expr: &str) -> Result<Value> {
        let deadline = Instant::now() + WAIT;
        let script = format!("return ({expr});");
        loop {
            let value = self.js(&script).await?;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Page(format!(
                    "`{expr}` still {value} after {WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Presses Tab (from the element that has the focus) until the element
    /// matching `css` has it, at most `max` times; how many presses that
    /// took. The error says where the focus went instead.
    pub async fn tab_to(&self, css: &str, max: usize) -> Result<usize> {
        let tab = fantoccini::key::Key::Tab.to_string();
        let probe = format!(
            "const a = document.activeElement; \
             return [a !== null && a.matches({css}), a ? a.outerHTML.slice(0, 120) : null];",
            css = Value::String(css.to_string())
        );
        let mut visited = Vec::new();
        for presses in 0..=max {
            let state = self.js(&probe).await?;
            if state[0] == Value::Bool(true) {
                return Ok(presses);
            }
            visited.push(state[1].as_str().unwrap_or("(none)").to_string());
            self.client.active_element().await?.send_keys(&tab).await?;
        }
        Err(BrowserError::Page(format!(
            "{css} not focused after {max} Tab presses; the focus went through: {visited:#?}"
        )))
    }

    /// How the page overflows its viewport's width, if it does
    /// (`document.documentElement.scrollWidth > innerWidth`): a message
    /// naming the page, both widths, and the elements that reach past the
    /// right edge.
    pub async fn horizontal_overflow(&self) -> Result<Option<String>> {
        let layout = self.js(OVERFLOW_JS).await?;
        let scroll = layout["scrollWidth"].as_u64().unwrap_or(u64::MAX);
        let inner = layout["innerWidth"].as_u64().unwrap_or(0);
        Ok((scroll > inner).then(|| {
            format!(
                "{} overflows horizontally: scrollWidth {scroll} > innerWidth {inner}; too wide: {}",
                layout["page"], layout["wide"]
            )
        }))
    }

    /// Panics unless the page fits its viewport's width
    /// ([`horizontal_overflow`](Self::horizontal_overflow) says why).
    pub async fn assert_no_horizontal_overflow(&self) -> Result<()> {
        if let Some(message) = self.horizontal_overflow().await? {
            panic!("{message}");
        }
        Ok(())
    }

    /// The URLs the page loaded (its navigation and every resource entry
    /// of the Performance API) whose origin is not `origin`
    /// (`http://127.0.0.1:PORT`); `data:` URLs are no request and not
    /// listed.
    pub async fn foreign_requests(&self, origin: &str) -> Result<Vec<String>> {
        let names = self
            .js("return performance.getEntriesByType('navigation') \
                 .concat(performance.getEntriesByType('resource')).map(e => e.name);")
            .await?;
        let names = names
            .as_array()
            .ok_or_else(|| BrowserError::Page(format!("performance entries: {names}")))?;
        let origin = origin.trim_end_matches('/');
        Ok(names
            .iter()
            .filter_map(Value::as_str)
            .filter(|name| !name.starts_with("data:") && !is_on(name, origin))
            .map(str::to_string)
            .collect())
    }

    /// The browser console's entries since the last call (each
    /// `{"level", "message", "source", "timestamp"}`; chromedriver drains
    /// them on every read).
    pub async fn console_log(&self) -> Result<Vec<Value>> {
        match self.client.issue_cmd(BrowserLog).await? {
            Value::Array(entries) => Ok(entries),
            other => Err(BrowserError::Page(format!("the browser log: {other}"))),
        }
    }

    /// Ends the session (Chromium exits), then stops chromedriver.
    pub async fn close(self) -> Result<()> {
        let Browser { client, driver, .. } = self;
        let closed = client.close().await;
        drop(driver);
        Ok(closed?)
    }
}

/// Whether `url` is on `origin` (`scheme://host:port`, no trailing slash).
fn is_on(url: &str, origin: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

/// The width and height of a PNG (its IHDR chunk).
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let at = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    Some((at(16), at(20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The processes still running (not zombies) whose command line
    /// mentions `needle`.
    fn running_with(needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let dir = entry.path();
            let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            if cmdline.contains(needle) && !state.starts_with('Z') && !state.starts_with('X') {
                found.push(format!("{}: {cmdline}", dir.display()));
            }
        }
        found
    }

    /// Dropping the browser without closing it (a test that panicked)
    /// leaves no chromedriver and no Chromium process behind.
    #[test]
    fn a_dropped_browser_leaves_no_process() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (profile, driver) = rt.block_on(async {
            let b = Browser::start().await.unwrap();
            b.client().goto("about:blank").await.unwrap();
            let profile = b.profile_dir().display().to_string();
            assert!(!running_with(&profile).is_empty(), "Chromium runs");
            let driver = b.driver_pid();
            drop(b);
            (profile, driver)
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = running_with(&profile);
            let driver_alive =
                std::fs::read_to_string(format!("/proc/{driver}/stat")).is_ok_and(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                });
            if left.is_empty() && !driver_alive {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "left running: {left:#?}; chromedriver running: {driver_alive}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!Path::new(&profile).exists(), "the profile is removed");
    }

    /// The overflow check sees a page wider than a phone, and an exact
    /// viewport and screenshot size.
    #[test]
    fn a_page_wider_than_the_viewport_is_caught() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let b = Browser::start().await.unwrap();
            b.client()
                .goto("data:text/html,<body style='margin:0'><p>fits</p></body>")
                .await
                .unwrap();
            b.set_viewport(390, 844).await.unwrap();
            assert_eq!(b.horizontal_overflow().await.unwrap(), None);
            let shot = tempfile::tempdir().unwrap();
            let size = b.screenshot(&shot.path().join("fits.png")).await.unwrap();
            assert_eq!(size, (390, 844));
            b.js("const d = document.createElement('div'); d.id = 'wide'; \
                  d.style.width = '600px'; d.textContent = 'wide'; document.body.append(d); return null;")
                .await
                .unwrap();
            let message = b.horizontal_overflow().await.unwrap().expect("overflow");
            assert!(
                message.contains("scrollWidth 600 > innerWidth 390") && message.contains("div#wide"),
                "{message}"
            );
            b.close().await.unwrap();
        });
    }

    #[test]
    fn urls_on_the_origin_only_are_not_foreign() {
        let origin = "http://127.0.0.1:8080";
        assert!(is_on("http://127.0.0.1:8080/", origin));
        assert!(is_on("http://127.0.0.1:8080/static/portal.css", origin));
        assert!(is_on("http://127.0.0.1:8080?q=x", origin));
        assert!(!is_on("http://127.0.0.1:80801/", origin));
        assert!(!is_on("http://localhost:8080/", origin));
        assert!(!is_on("https://fonts.example/x.css", origin));
    }

    #[test]
    fn png_sizes_and_screenshot_directories() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&390u32.to_be_bytes());
        png.extend_from_slice(&844u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((390, 844)));
        assert_eq!(png_size(b"GIF89a"), None);
        let dir = screenshots_dir_for("pages::catalog at 390");
        assert!(dir.ends_with("pages-catalog_at_390"), "{}", dir.display());
    }
}
