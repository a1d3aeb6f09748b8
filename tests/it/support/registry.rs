//! A real docker-registry (Debian's distribution 2.8) on 127.0.0.1, started per test.
//!
//! Variants: [`TestRegistry::anonymous`] (plain http), [`TestRegistry::basic_tls`] (htpasswd
//! bcrypt over TLS with a self-signed certificate made by the openssl CLI) and
//! [`TestRegistry::bearer`] (`auth: silly`, which issues a Bearer challenge, paired with an
//! in-test token server that demands Basic credentials and records the scopes it was asked
//! for). Storage and logs live in a temp dir; the process is killed and reaped on drop.
//! [`TestRegistry::requests`] reads the registry's access log so tests can count uploads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One line of the registry's access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A running docker-registry.
pub struct TestRegistry {
    /// Where it listens (127.0.0.1:port).
    pub addr: SocketAddr,
    /// `https` for the TLS variant.
    pub tls: bool,
    /// The test CA (PEM) that signed the registry's certificate, for the TLS variant.
    pub ca_file: Option<PathBuf>,
    /// The user and password it accepts (Basic / token server variants).
    pub credentials: Option<(String, String)>,
    /// The registry's storage root (`docker/registry/v2/...` lives under it).
    pub storage: PathBuf,
    log: PathBuf,
    child: Child,
    token: Option<TokenServer>,
    dir: tempfile::TempDir,
}

/// Picks a free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TestRegistry {
    /// Anonymous, plain http.
    pub fn anonymous() -> TestRegistry {
        Self::start(Variant::Anonymous)
    }

    /// htpasswd (bcrypt) Basic auth over TLS with a self-signed certificate.
    pub fn basic_tls(user: &str, password: &str) -> TestRegistry {
        Self::start(Variant::BasicTls(user.into(), password.into()))
    }

    /// Bearer tokens: `auth: silly` plus an in-test token server demanding these credentials.
    pub fn bearer(user: &str, password: &str) -> TestRegistry {
        Self::start(Variant::Bearer(user.into(), password.into()))
    }

    fn start(variant: Variant) -> TestRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let storage = dir.path().join("storage");
        let log = dir.path().join("registry.log");
        let mut auth_yaml = String::new();
        let mut tls_yaml = String::new();
        let mut tls = false;
        let mut ca_file = None;
        let mut credentials = None;
        let mut token = None;
        match &variant {
            Variant::Anonymous => {}
            Variant::BasicTls(user, pass) => {
                let htpasswd = run(Command::new("htpasswd").args(["-Bbn", user, pass]));
                let htpath = dir.path().join("htpasswd");
                std::fs::write(&htpath, htpasswd).expect("write htpasswd");
                // A CA and a leaf it signs (rustls refuses a CA certificate as the server's).
                let d = dir.path();
                let (ca, ca_key) = (d.join("ca.pem"), d.join("ca-key.pem"));
                let (cert, key, csr) = (d.join("cert.pem"), d.join("key.pem"), d.join("cert.csr"));
                let ext = d.join("leaf.ext");
                std::fs::write(
                    &ext,
                    "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
                )
                .expect("write ext");
                run(Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    ])
                    .args(["-subj", "/CN=shipit test CA"])
                    .arg("-keyout")
                    .arg(&ca_key)
                    .arg("-out")
                    .arg(&ca)
                    .stderr(Stdio::null()));
                run(Command::new("openssl")
                    .args([
                        "req",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-subj",
                        "/CN=localhost",
                    ])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(&csr)
                    .stderr(Stdio::null()));
                run(Command::new("openssl")
                    .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                    .arg("-in")
                    .arg(&csr)
                    .arg("-CA")
                    .arg(&ca)
                    .arg("-CAkey")
                    .arg(&ca_key)
                    .arg("-extfile")
                    .arg(&ext)
                    .arg("-out")
                    .arg(&cert)
                    .stderr(Stdio::null()));
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    htpath.display()
                );
                tls_yaml = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                );
                tls = true;
                ca_file = Some(ca);
                credentials = Some((user.clone(), pass.clone()));
            }
            Variant::Bearer(user, pass) => {
                let server = TokenServer::start(user, pass);
                auth_yaml = format!(
                    "auth:\n  silly:\n    realm: http://{}/token\n    service: test-registry\n",
                    server.addr
                );
                token = Some(server);
                credentials = Some((user.clone(), pass.clone()));
            }
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: json\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{auth_yaml}http:\n  addr: {addr}\n{tls_yaml}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file)
            .spawn()
            .expect("docker-registry not installed: apt-get install docker-registry");
        let mut reg = TestRegistry {
            addr,
            tls,
            ca_file,
            credentials,
            storage,
            log,
            child,
            token,
            dir,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}) before listening:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains("listening on"))
                && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {} within 15 s:\n{}",
                self.addr,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// A scratch directory inside the fixture's temp dir (removed with it).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// Every request the registry logged so far (access log: method, path, status).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                // combined log format: ... "METHOD /path HTTP/1.1" STATUS SIZE ...
                let start = line.find("] \"")? + 3;
                let rest = &line[start..];
                let end = rest.find('"')?;
                let mut parts = rest[..end].split(' ');
                let method = parts.next()?.to_string();
                let path = parts.next()?.to_string();
                let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
                Some(LoggedRequest {
                    method,
                    path,
                    status,
                })
            })
            .collect()
    }

    /// How many logged requests have this method and a path containing `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(needle))
            .count()
    }

    /// The full registry log (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The scopes of each granted token request, in order, space-separated within a request
    /// (Bearer variant; empty otherwise). skopeo's requests show up here too.
    pub fn token_scopes(&self) -> Vec<String> {
        self.token
            .as_ref()
            .map(|t| t.log.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// How many token requests were refused (bad or missing credentials).
    pub fn token_refusals(&self) -> usize {
        self.token
            .as_ref()
            .map(|t| *t.refusals.lock().unwrap_or_else(|p| p.into_inner()))
            .unwrap_or(0)
    }

    /// Writes a containers-auth.json for skopeo (`--authfile`), so no secret goes in argv.
    pub fn write_authfile(&self, dir: &Path) -> PathBuf {
        use base64::Engine as _;
        let path = dir.join("auth.json");
        let auths = match &self.credentials {
            Some((u, p)) => {
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                format!(r#"{{"auths":{{"{}":{{"auth":"{b}"}}}}}}"#, self.addr)
            }
            None => r#"{"auths":{}}"#.to_string(),
        };
        std::fs::write(&path, auths).expect("write auth.json");
        path
    }

    /// `skopeo inspect --raw docker://ADDR/<repo_tag>` → the bytes (TLS not verified; creds
    /// from a temp authfile).
    pub fn skopeo_raw(&self, repo_tag: &str) -> Vec<u8> {
        let tmp = tempfile::tempdir().expect("tmp");
        let authfile = self.write_authfile(tmp.path());
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
            .arg(&authfile)
            .arg(format!("docker://{}/{repo_tag}", self.addr)))
    }

    /// The path of a stored blob's data file (to tamper with it in tests).
    pub fn blob_data_path(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Variant {
    Anonymous,
    BasicTls(String, String),
    Bearer(String, String),
}

/// A token endpoint: `GET /token?service=..&scope=..` with Basic credentials → `{"token":..}`.
struct TokenServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    refusals: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    fn start(user: &str, pass: &str) -> TokenServer {
        use base64::Engine as _;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("token addr");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, ref2, stop2) = (log.clone(), refusals.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                n += 1;
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut authz = None;
                let mut content_length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "authorization" => authz = Some(v.trim().to_string()),
                            "content-length" => content_length = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; content_length];
                let _ = reader.read_exact(&mut body);
                let target = request_line.split_whitespace().nth(1).unwrap_or("");
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let scopes: Vec<String> = query
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(percent_decode)
                    .collect();
                let (status, body) = if authz.as_deref() == Some(expected.as_str()) {
                    log2.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(scopes.join(" "));
                    (
                        "200 OK",
                        format!(r#"{{"token":"tok-{n}","expires_in":300}}"#),
                    )
                } else {
                    *ref2.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.to_string(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            addr,
            log,
            refusals,
            stop,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
