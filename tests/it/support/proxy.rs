//! A fault-injecting HTTP/1.1 proxy in front of a test registry (std threads only). It serves
//! one request per connection (forwarded upstream with `Connection: close`) and, on the Nth
//! request matching a rule, answers a status itself (503, 429 + `Retry-After`), resets the
//! connection after N bytes of the request body, or trickles an answer that never ends (one
//! header line every interval). Tests using it are named `fault_*`.
//!
//! With [`FaultProxy::with_referrers_api`] it also plays a registry that serves the OCI 1.1
//! referrers API in front of docker-registry 2.8 (which does not): a manifest PUT whose body has
//! a `subject` is answered with `OCI-Subject`, and `GET /v2/<name>/referrers/<digest>` lists the
//! manifests seen for that subject.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status without forwarding (with `Retry-After: secs` if given).
    Status {
        status: u16,
        retry_after: Option<u32>,
    },
    /// Read this many body bytes, then reset the connection (RST, `SO_LINGER` 0).
    ResetAfterBody(usize),
    /// Answer `200 OK`, then one more header line every this often, never ending the headers
    /// (for two minutes at most, or until the client hangs up).
    Trickle(Duration),
}

/// Apply `fault` to the `nth` (1-based) request whose method is `method` and whose path
/// contains `path_contains`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub path_contains: String,
    pub nth: usize,
    pub fault: Fault,
}

struct RuleState {
    rule: Rule,
    seen: AtomicUsize,
}

/// One request the proxy saw: method, path, and what happened (`forwarded` or the fault).
#[derive(Clone, Debug)]
#[allow(dead_code)] // `outcome` is for assertion messages ({:?})
pub struct Seen {
    pub method: String,
    pub path: String,
    pub outcome: String,
}

/// A running proxy; stops accepting on drop.
pub struct FaultProxy {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

/// Subject digest → the referrer descriptors seen (the referrers API's state).
type Referrers = Arc<Mutex<std::collections::BTreeMap<String, Vec<serde_json::Value>>>>;

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, rules: Vec<Rule>) -> FaultProxy {
        FaultProxy::start_inner(upstream, rules, None)
    }

    /// Forwards to `upstream`, but answers the first blob HEAD by trickling a header line every
    /// `every` (for two minutes at most): a registry that hangs on the first request.
    pub fn trickling_first_blob_head(upstream: SocketAddr, every: Duration) -> FaultProxy {
        FaultProxy::start(
            upstream,
            vec![Rule {
                method: "HEAD",
                path_contains: "/blobs/".into(),
                nth: 1,
                fault: Fault::Trickle(every),
            }],
        )
    }

    /// Like `start`, and serves the referrers API (see the module comment).
    pub fn with_referrers_api(upstream: SocketAddr, rules: Vec<Rule>) -> FaultProxy {
        FaultProxy::start_inner(upstream, rules, Some(Referrers::default()))
    }

    fn start_inner(
        upstream: SocketAddr,
        rules: Vec<Rule>,
        referrers: Option<Referrers>,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rules: Arc<Vec<RuleState>> = Arc::new(
            rules
                .into_iter()
                .map(|rule| RuleState {
                    rule,
                    seen: AtomicUsize::new(0),
                })
                .collect(),
        );
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rules, log, referrers) = (rules.clone(), log2.clone(), referrers.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, &rules, &log, referrers.as_ref());
                });
            }
        });
        FaultProxy { addr, log, stop }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many requests had this method and a path containing `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.contains(needle))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn handle(
    client: TcpStream,
    upstream: SocketAddr,
    rules: &[RuleState],
    log: &Mutex<Vec<Seen>>,
    referrers: Option<&Referrers>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if k == "connection" {
                continue;
            }
        }
        headers.push(line);
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let fault = rules.iter().find_map(|r| {
        let matches = r.rule.method == method && path.contains(&r.rule.path_contains);
        (matches && r.seen.fetch_add(1, Ordering::SeqCst) + 1 == r.rule.nth)
            .then(|| r.rule.fault.clone())
    });
    let record = |outcome: String| {
        log.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
            method: method.clone(),
            path: path.clone(),
            outcome,
        });
    };
    let mut client_w = client;
    match fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            std::io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut std::io::sink(),
            )?;
            record(format!("status {status}"));
            let extra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            write!(
                client_w,
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n"
            )?;
            client_w.flush()
        }
        Some(Fault::ResetAfterBody(n)) => {
            std::io::copy(
                &mut (&mut reader).take(n.min(content_length) as u64),
                &mut std::io::sink(),
            )?;
            record(format!("reset after {n} body bytes"));
            reset(&client_w);
            Ok(())
        }
        Some(Fault::Trickle(every)) => {
            std::io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut std::io::sink(),
            )?;
            record(format!("trickle every {every:?}"));
            client_w.write_all(b"HTTP/1.1 200 OK\r\n")?;
            let until = std::time::Instant::now() + Duration::from_secs(120);
            let mut n = 0;
            while std::time::Instant::now() < until {
                client_w.flush()?;
                std::thread::sleep(every);
                n += 1;
                write!(client_w, "X-Trickle-{n}: {n}\r\n")?;
            }
            Ok(())
        }
        None if referrers.is_some() && method == "GET" && path.contains("/referrers/") => {
            record("referrers API".into());
            let subject = path.rsplit('/').next().unwrap_or("").to_string();
            let listed = referrers
                .unwrap()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&subject)
                .cloned()
                .unwrap_or_default();
            let body = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": listed,
            }))
            .unwrap();
            write!(
                client_w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            client_w.write_all(&body)?;
            client_w.flush()
        }
        None if referrers.is_some() && method == "PUT" && path.contains("/manifests/sha256:") => {
            record("forwarded (referrers API)".into());
            let mut body = vec![0u8; content_length];
            reader.read_exact(&mut body)?;
            let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let subject = manifest["subject"]["digest"].as_str().map(str::to_string);
            let mut up = TcpStream::connect(upstream)?;
            let mut head = request_line.clone();
            for h in &headers {
                head.push_str(h);
            }
            head.push_str("Connection: close\r\n\r\n");
            up.write_all(head.as_bytes())?;
            up.write_all(&body)?;
            up.flush()?;
            let mut up = BufReader::new(up);
            let mut status = String::new();
            up.read_line(&mut status)?;
            client_w.write_all(status.as_bytes())?;
            if let (Some(subject), true) = (subject, status.contains(" 201 ")) {
                let digest = path.rsplit('/').next().unwrap_or("").to_string();
                let mut desc = serde_json::json!({
                    "mediaType": manifest["mediaType"],
                    "digest": digest,
                    "size": body.len(),
                });
                for k in ["artifactType", "annotations"] {
                    if !manifest[k].is_null() {
                        desc[k] = manifest[k].clone();
                    }
                }
                let mut map = referrers.unwrap().lock().unwrap_or_else(|p| p.into_inner());
                let list = map.entry(subject.clone()).or_default();
                if !list.iter().any(|d| d["digest"] == desc["digest"]) {
                    list.push(desc);
                }
                write!(client_w, "OCI-Subject: {subject}\r\n")?;
            }
            std::io::copy(&mut up, &mut client_w)?;
            client_w.flush()
        }
        None => {
            record("forwarded".into());
            let mut up = TcpStream::connect(upstream)?;
            let mut head = request_line.clone();
            for h in &headers {
                head.push_str(h);
            }
            head.push_str("Connection: close\r\n\r\n");
            up.write_all(head.as_bytes())?;
            std::io::copy(&mut (&mut reader).take(content_length as u64), &mut up)?;
            up.flush()?;
            std::io::copy(&mut up, &mut client_w)?;
            client_w.flush()
        }
    }
}

/// Closes with RST instead of FIN.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
