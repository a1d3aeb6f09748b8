//! tlsapp: a small TLS client linking the system OpenSSL through the `openssl` crate (no
//! `vendored` feature), shipit's example for C libraries. `--self-test` initialises OpenSSL,
//! prints its version, finds the CA roots the way native-tls does (`openssl-probe`:
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` or the well-known paths), loads them into an `X509Store` and
//! prints how many it found; it exits non-zero when there are none. `tlsapp HOST[:PORT]` opens a
//! verified TLS connection and prints the negotiated protocol and the peer's subject.

use openssl::ssl::{SslConnector, SslMethod};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") => {
            println!("tlsapp {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--self-test") => self_test(),
        Some(host) if !host.starts_with('-') => connect(host),
        _ => {
            eprintln!("usage: tlsapp --version | --self-test | HOST[:PORT]");
            ExitCode::from(2)
        }
    }
}

/// Every root certificate in the PEM file `path` (none when it cannot be read).
fn roots_in_file(path: &Path) -> Vec<X509> {
    std::fs::read(path)
        .ok()
        .and_then(|pem| X509::stack_from_pem(&pem).ok())
        .unwrap_or_default()
}

/// Every root in the hashed directory `dir` (`<hash>.<n>` files, as c_rehash makes them).
fn roots_in_dir(dir: &Path) -> Vec<X509> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut roots = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let hashed = name
            .split_once('.')
            .is_some_and(|(h, n)| h.len() == 8 && n.chars().all(|c| c.is_ascii_digit()));
        if hashed {
            roots.extend(roots_in_file(&e.path()));
        }
    }
    roots
}

fn self_test() -> ExitCode {
    openssl::init();
    println!(
        "openssl {} ({})",
        openssl::version::version(),
        openssl::version::number()
    );
    let probe = openssl_probe::probe();
    let mut roots = Vec::new();
    if let Some(file) = &probe.cert_file {
        println!("ca file: {}", file.display());
        roots.extend(roots_in_file(file));
    }
    if let Some(dir) = &probe.cert_dir {
        println!("ca dir: {}", dir.display());
        if roots.is_empty() {
            roots.extend(roots_in_dir(dir));
        }
    }
    let mut store = match X509StoreBuilder::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tlsapp: X509StoreBuilder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut added = 0usize;
    for cert in roots {
        if store.add_cert(cert).is_ok() {
            added += 1;
        }
    }
    let store = store.build();
    let in_store = store.all_certificates().len();
    println!("ca roots: {in_store} (added {added})");
    if in_store == 0 {
        eprintln!(
            "tlsapp: no CA roots found (checked SSL_CERT_FILE, SSL_CERT_DIR and the well-known paths)"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn connect(target: &str) -> ExitCode {
    let (host, addr) = match target.rsplit_once(':') {
        Some((h, _)) => (h.to_string(), target.to_string()),
        None => (target.to_string(), format!("{target}:443")),
    };
    // SAFETY: called before any thread is started, as openssl-probe requires.
    unsafe { openssl_probe::init_openssl_env_vars() };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let connector = SslConnector::builder(SslMethod::tls_client())?.build();
        let tcp = TcpStream::connect(&addr)?;
        let mut tls = connector.connect(&host, tcp)?;
        println!("{} {}", tls.ssl().version_str(), host);
        if let Some(cert) = tls.ssl().peer_certificate() {
            println!("peer: {:?}", cert.subject_name());
        }
        write!(tls, "HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut first = [0u8; 64];
        let n = tls.read(&mut first)?;
        println!("{}", String::from_utf8_lossy(&first[..n]).lines().next().unwrap_or(""));
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlsapp: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
