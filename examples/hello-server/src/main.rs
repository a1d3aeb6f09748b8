//! hello-server: a small HTTP/1.1 service, the example project and test fixture for shipit.
//!
//! It serves `GET /health` (`ok`) and `GET /` (names the CPU architecture it was built for) on
//! `0.0.0.0:$PORT` (default 8080), one thread per connection, one request per connection. SIGTERM or
//! SIGINT stops it accepting, lets in-flight requests finish (bounded), logs `shutting down` and
//! exits 0 within a second. It has no dependency but `libc` (for the signal handler), so it builds
//! for every target shipit supports, including with `-Zbuild-std=std,panic_abort`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Set by the signal handler; read by the accept loop.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// The write end of the self-pipe: the signal handler writes a byte to it, which wakes the accept
/// loop's `poll` at once (-1 until the pipe exists).
static WAKE: AtomicI32 = AtomicI32::new(-1);

/// How long the accept loop pauses after an accept error it cannot act on (EMFILE and friends).
const BACKOFF: Duration = Duration::from_millis(20);
/// How long in-flight requests may take after a shutdown signal (the whole exit stays under 1 s).
const DRAIN: Duration = Duration::from_millis(700);
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted; more is answered with 431.
const MAX_HEAD: usize = 8 * 1024;

const USAGE: &str = "\
Usage: hello-server [--version | --help]

Serves HTTP/1.1 on 0.0.0.0:$PORT (PORT defaults to 8080):
  GET /health   200 ok
  GET /         200 a greeting naming the CPU architecture
  anything else 404
SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("--version" | "-V") => {
            println!("hello-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("hello-server: unknown argument `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }

    let port = match std::env::var("PORT") {
        Err(_) => 8080,
        Ok(p) => {
            match p.trim().parse::<u16>() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("hello-server: PORT={p:?} is not a TCP port number ({e}); set PORT to 0..65535");
                    return ExitCode::from(2);
                }
            }
        }
    };
    match serve(SocketAddr::from(([0, 0, 0, 0], port))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-server: {e}");
            ExitCode::FAILURE
        }
    }
}

extern "C" fn on_signal(_signal: libc::c_int) {
    // An atomic store and `write` are async-signal-safe; everything else happens in the accept
    // loop, which the byte wakes. errno is saved around `write`, as a handler must.
    SHUTDOWN.store(true, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: errno is thread-local and read/written in place; `fd` is our pipe's
        // non-blocking write end, and a full pipe (EAGAIN) already holds a wake-up byte.
        unsafe {
            let errno = libc::__errno_location();
            let saved = *errno;
            libc::write(fd, b"x".as_ptr().cast(), 1);
            *errno = saved;
        }
    }
}

/// A pipe whose read end the accept loop polls beside the listener, and whose write end the
/// signal handler writes to: a signal that arrives at any moment, even just before `poll`, wakes
/// the loop (a byte in the pipe keeps it readable).
fn wake_pipe() -> io::Result<libc::c_int> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    WAKE.store(fds[1], Ordering::SeqCst);
    Ok(fds[0])
}

fn install_signal_handlers() -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `action` is fully initialised (zeroed, then the handler and an empty mask set);
        // the handler only stores to an atomic, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let wake =
        wake_pipe().map_err(|e| io::Error::new(e.kind(), format!("cannot create a pipe: {e}")))?;
    install_signal_handlers().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot install SIGTERM/SIGINT handlers: {e}"),
        )
    })?;
    let listener = TcpListener::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e}; is the port in use?"),
        )
    })?;
    listener.set_nonblocking(true)?;
    eprintln!("listening on {}", listener.local_addr()?);

    let in_flight = Arc::new(AtomicUsize::new(0));
    while !SHUTDOWN.load(Ordering::SeqCst) {
        // Sleep until a connection is waiting or a signal wrote to the pipe: no polling
        // interval, so a connection is answered and SIGTERM acted on at once.
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(io::Error::new(e.kind(), format!("poll: {e}")));
        }
        if SHUTDOWN.load(Ordering::SeqCst) {
            break;
        }
        match listener.accept() {
            Ok((stream, _peer)) => {
                in_flight.fetch_add(1, Ordering::SeqCst);
                let guard = InFlight(Arc::clone(&in_flight));
                let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
                    let _guard = guard;
                    // A client that hangs up early is its own problem, not the server's.
                    let _ = handle(stream);
                });
                if let Err(e) = spawned {
                    eprintln!("hello-server: cannot start a connection thread: {e}");
                }
            }
            // The connection went away between poll and accept.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                // EMFILE, ECONNABORTED and friends: keep serving, but do not spin.
                eprintln!("hello-server: accept failed: {e}");
                thread::sleep(BACKOFF);
            }
        }
    }
    drop(listener);
    eprintln!("shutting down");
    let deadline = Instant::now() + DRAIN;
    while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Counts a connection as in flight until its thread ends (also on panic-free early returns).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;

    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if find_head_end(&head).is_some() {
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
        match stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    if !complete {
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
                false,
            );
        }
        if head.is_empty() {
            return Ok(());
        }
        return respond(
            &mut stream,
            400,
            "Bad Request",
            "incomplete request\n",
            false,
        );
    }

    let line_end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return respond(
            &mut stream,
            400,
            "Bad Request",
            "request line is not UTF-8\n",
            false,
        );
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return respond(
            &mut stream,
            400,
            "Bad Request",
            "malformed request line\n",
            false,
        );
    };
    if !version.starts_with("HTTP/1.") {
        return respond(
            &mut stream,
            505,
            "HTTP Version Not Supported",
            "only HTTP/1.x\n",
            false,
        );
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return respond(
                &mut stream,
                405,
                "Method Not Allowed",
                "only GET and HEAD\n",
                false,
            )
        }
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/health" => respond(&mut stream, 200, "OK", "ok\n", head_only),
        "/" => {
            let body = format!(
                "hello from hello-server {} on {}\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH
            );
            respond(&mut stream, 200, "OK", &body, head_only)
        }
        _ => respond(&mut stream, 404, "Not Found", "not found\n", head_only),
    }
}

/// Index just past the blank line ending the request head, accepting bare `\n` line ends too.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i + 4);
    }
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()
}
