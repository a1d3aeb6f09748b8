//! Where registry credentials come from, and how they are kept out of logs.
//!
//! Order: `SHIPIT_REGISTRY_USER` + `SHIPIT_REGISTRY_PASSWORD`; else docker's `config.json`
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`): `credHelpers[host]`, then
//! `auths[host]` (`identitytoken`, or `auth` = base64 `user:password`), then `credsStore`.
//! Helpers (`docker-credential-<name> get`, server on stdin) run through `exec` (own process
//! group, a timeout, the run's cancel token) and their output never reaches an error message. Every secret lives in a [`Secret`], whose `Debug` and
//! `Display` print `***`.

use super::reference::DOCKER_HUB;
use crate::exec::Cancel;
use base64::Engine as _;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default time a credential helper gets before it is killed.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// A secret string: prints as `***`; [`Secret::expose`] is the only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself: only for building an HTTP header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials for one registry host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic { username: String, password: Secret },
    /// A docker identity (refresh) token, exchanged at the token realm.
    IdentityToken(Secret),
}

/// Why credentials could not be read. Never contains a secret or a helper's output.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read docker config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(
        "credential helper {helper} for {host} failed ({reason}); run `{helper} get` by hand or `docker login {host}`"
    )]
    Helper {
        helper: String,
        host: String,
        reason: String,
    },
    #[error(
        "SHIPIT_REGISTRY_USER is set but SHIPIT_REGISTRY_PASSWORD is not (or the reverse): set both or neither"
    )]
    HalfEnv,
    #[error("looking up registry credentials was cancelled by {}", crate::exec::signal_name(*.0))]
    Cancelled(i32),
}

impl Credentials {
    /// Finds credentials for `registry` (`host[:port]`) from the environment and docker's config.
    /// `Ok(None)` means "none configured": the client then tries anonymously.
    pub fn resolve(
        registry: &str,
        helper_timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Option<Credentials>, CredentialError> {
        let user = std::env::var("SHIPIT_REGISTRY_USER")
            .ok()
            .filter(|s| !s.is_empty());
        let pass = std::env::var("SHIPIT_REGISTRY_PASSWORD")
            .ok()
            .filter(|s| !s.is_empty());
        // SHIPIT_REGISTRY_HOST, when set, scopes the environment credentials to that one
        // registry (a base or a verified image on another registry never receives them).
        let scoped_elsewhere = std::env::var("SHIPIT_REGISTRY_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .is_some_and(|h| !h.eq_ignore_ascii_case(registry));
        match (user, pass) {
            _ if scoped_elsewhere => {}
            (Some(username), Some(p)) => {
                return Ok(Some(Credentials::Basic {
                    username,
                    password: Secret(p),
                }));
            }
            (None, None) => {}
            _ => return Err(CredentialError::HalfEnv),
        }
        let Some(path) = docker_config_path() else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        from_docker_config(&path, registry, helper_timeout, cancel)
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The keys docker may have used for this registry in `auths` / `credHelpers`.
fn candidate_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == DOCKER_HUB {
        keys.extend([
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
        ]);
    }
    keys
}

/// Looks `registry` up in one docker config file.
pub fn from_docker_config(
    path: &Path,
    registry: &str,
    helper_timeout: Duration,
    cancel: &Cancel,
) -> Result<Option<Credentials>, CredentialError> {
    let cfg_err = |reason: String| CredentialError::Config {
        path: path.to_path_buf(),
        reason,
    };
    // A regular file only, never a FIFO or device, at most 1 MiB.
    let bytes =
        crate::oci::fsafe::read_following(path, 1 << 20).map_err(|e| cfg_err(e.why.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| cfg_err(e.to_string()))?;
    // serde_json's error says where, never echoes the value.
    let cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| cfg_err(format!("not valid JSON: {e}")))?;
    let keys = candidate_keys(registry);
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    };

    let helpers = cfg.get("credHelpers").and_then(|v| v.as_object());
    if let Some(name) = helpers
        .and_then(|h| keys.iter().find_map(|k| h.get(k)))
        .and_then(|v| v.as_str())
    {
        return run_helper(&helper_program(name), &server, helper_timeout, cancel);
    }
    let auths = cfg.get("auths").and_then(|v| v.as_object());
    if let Some(entry) = auths.and_then(|a| keys.iter().find_map(|k| a.get(k))) {
        if let Some(tok) = entry
            .get("identitytoken")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
        {
            return Ok(Some(Credentials::IdentityToken(Secret(tok.to_string()))));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
        {
            let bad = || {
                cfg_err(format!(
                    "auths[{registry:?}].auth is not base64 of user:password"
                ))
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::Basic {
                username: user.to_string(),
                password: Secret(pass.to_string()),
            }));
        }
    }
    if let Some(store) = cfg
        .get("credsStore")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        return run_helper(&helper_program(store), &server, helper_timeout, cancel);
    }
    Ok(None)
}

fn helper_program(name: &str) -> PathBuf {
    let bin = format!("docker-credential-{name}");
    which::which(&bin).unwrap_or_else(|_| PathBuf::from(bin))
}

/// Runs `PROGRAM get` with `server` on stdin. The helper's stdout (which may hold the secret,
/// or echo it on failure) is parsed and never copied into an error.
pub fn run_helper(
    program: &Path,
    server: &str,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Option<Credentials>, CredentialError> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let fail = |reason: String| CredentialError::Helper {
        helper: name.clone(),
        host: server.to_string(),
        reason,
    };
    let cmd = crate::exec::Cmd::new(
        program.display().to_string(),
        format!("credential helper {name} for {server}"),
    )
    .arg("get")
    .stdin(server);
    // Through exec: its own process group, the timeout, the run's cancel token. Its stderr is
    // dropped and its stdout (which may hold the secret, or echo it on failure) is parsed and
    // never copied into an error.
    let out = crate::exec::output(&cmd, timeout, 1 << 20, cancel).map_err(|e| match e {
        crate::exec::ExecError::Spawn { source, .. } => fail(format!("cannot start it: {source}")),
        crate::exec::ExecError::Timeout { .. } => {
            fail(format!("timed out after {}s", timeout.as_secs_f32()))
        }
        crate::exec::ExecError::Cancelled { signal, .. } => CredentialError::Cancelled(signal),
        other => fail(format!("cannot run it: {other}")),
    })?;
    let (status, out) = (out.status, out.stdout);
    if !status.success() {
        if String::from_utf8_lossy(&out).contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "exit status {}; its output is not shown because it may hold a secret",
            crate::exec::describe_status(&status)
        )));
    }
    #[derive(serde::Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let parsed: HelperOut = serde_json::from_slice(&out)
        .map_err(|_| fail("its output is not the expected JSON {Username, Secret}".into()))?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    if parsed.username == "<token>" {
        return Ok(Some(Credentials::IdentityToken(Secret(parsed.secret))));
    }
    Ok(Some(Credentials::Basic {
        username: parsed.username,
        password: Secret(parsed.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    const CANARY: &str = "CANARY-5f1d2c";

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn secret_never_prints() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new(CANARY),
        };
        assert!(!format!("{c:?}").contains(CANARY));
        assert_eq!(format!("{}", Secret::new(CANARY)), "***");
    }

    #[test]
    fn reads_auths_and_identity_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("bob:{CANARY}"));
        std::fs::write(
            &cfg,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"identitytoken":"idt"}},"bad.example":{{"auth":"!!!"}}}}}}"#
            ),
        )
        .unwrap();
        let c = from_docker_config(&cfg, "127.0.0.1:5000", HELPER_TIMEOUT, &Cancel::new())
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "bob".into(),
                password: Secret::new(CANARY)
            }
        );
        let c = from_docker_config(&cfg, DOCKER_HUB, HELPER_TIMEOUT, &Cancel::new())
            .unwrap()
            .unwrap();
        assert_eq!(c, Credentials::IdentityToken(Secret::new("idt")));
        assert_eq!(
            from_docker_config(&cfg, "other.example", HELPER_TIMEOUT, &Cancel::new()).unwrap(),
            None
        );
        let e =
            from_docker_config(&cfg, "bad.example", HELPER_TIMEOUT, &Cancel::new()).unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
    }

    #[test]
    fn helper_success_token_and_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let ok = script(
            dir.path(),
            "docker-credential-ok",
            &format!(
                r#"read host; [ "$host" = "r.example" ] || exit 3; echo '{{"ServerURL":"r.example","Username":"ann","Secret":"{CANARY}"}}'"#
            ),
        );
        assert_eq!(
            run_helper(&ok, "r.example", HELPER_TIMEOUT, &Cancel::new()).unwrap(),
            Some(Credentials::Basic {
                username: "ann".into(),
                password: Secret::new(CANARY)
            })
        );
        let tok = script(
            dir.path(),
            "docker-credential-tok",
            r#"echo '{"Username":"<token>","Secret":"rt"}'"#,
        );
        assert_eq!(
            run_helper(&tok, "r.example", HELPER_TIMEOUT, &Cancel::new()).unwrap(),
            Some(Credentials::IdentityToken(Secret::new("rt")))
        );
        let nf = script(
            dir.path(),
            "docker-credential-nf",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        assert_eq!(
            run_helper(&nf, "r.example", HELPER_TIMEOUT, &Cancel::new()).unwrap(),
            None
        );
    }

    #[test]
    fn helper_failure_hides_output_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let bad = script(
            dir.path(),
            "docker-credential-bad",
            &format!("echo {CANARY}; exit 1"),
        );
        let e = run_helper(&bad, "r.example", HELPER_TIMEOUT, &Cancel::new()).unwrap_err();
        assert!(!e.to_string().contains(CANARY), "{e}");
        assert!(!format!("{e:?}").contains(CANARY));
        assert!(e.to_string().contains("docker-credential-bad"), "{e}");

        let hang = script(dir.path(), "docker-credential-hang", "exec sleep 30");
        let t = Instant::now();
        let e = run_helper(
            &hang,
            "r.example",
            Duration::from_millis(300),
            &Cancel::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_cancelled_run_stops_a_hanging_helper_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let hang = script(
            dir.path(),
            "docker-credential-hang",
            &format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
        );
        let cancel = Cancel::new();
        let token = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            token.cancel(libc::SIGINT);
        });
        let t = Instant::now();
        let e = run_helper(&hang, "r.example", Duration::from_secs(60), &cancel).unwrap_err();
        assert!(matches!(e, CredentialError::Cancelled(libc::SIGINT)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // The helper's own child went with its process group.
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false);
        assert!(!alive, "the helper's child {pid} survived the cancellation");
    }

    #[test]
    fn cred_helpers_win_over_auths() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        // credHelpers is consulted first: a helper that is not on PATH is an error, not a
        // silent fall-through to auths.
        std::fs::write(&cfg, r#"{"credHelpers":{"r.example":"shipit-test-absent"},"auths":{"r.example":{"auth":"dTpw"}}}"#).unwrap();
        let e = from_docker_config(&cfg, "r.example", HELPER_TIMEOUT, &Cancel::new()).unwrap_err();
        assert!(
            e.to_string()
                .contains("docker-credential-shipit-test-absent"),
            "{e}"
        );
    }
}
