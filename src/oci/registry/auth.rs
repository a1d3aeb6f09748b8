//! Registry authentication: the `WWW-Authenticate` challenge (Basic, or Bearer with realm,
//! service and scope), token scopes for a push (`repository:<repo>:pull,push`, plus
//! `repository:<source>:pull` for a cross-repository mount) and the token endpoint's answer.

use std::collections::BTreeMap;

/// What the registry asked for in its `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` value (`Scheme k="v", k2=v2`). `None` for unknown schemes.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| params.get(k).cloned();
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: get("realm").unwrap_or_default(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        }),
        _ => None,
    }
}

/// `k="v, with comma", k2=v2` → map with lowercase keys.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    _ => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// The scopes a push to `repo` needs; with `mount_from`, read access to the source as well.
pub fn push_scopes(repo: &str, mount_from: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("repository:{repo}:pull,push")];
    if let Some(src) = mount_from.filter(|s| *s != repo) {
        v.push(format!("repository:{src}:pull"));
    }
    v
}

/// The scope for reading `repo`.
pub fn pull_scopes(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull")]
}

/// The token endpoint's JSON answer (`token`, or OAuth2's `access_token`).
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

/// `application/x-www-form-urlencoded` / query-string escaping.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="test-realm""#),
            Some(Challenge::Basic {
                realm: "test-realm".into()
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://127.0.0.1:1/t, service=s"),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("s".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn scopes_and_encoding() {
        assert_eq!(push_scopes("a/b", None), vec!["repository:a/b:pull,push"]);
        assert_eq!(
            push_scopes("a/b", Some("c/d")),
            vec!["repository:a/b:pull,push", "repository:c/d:pull"]
        );
        assert_eq!(push_scopes("a/b", Some("a/b")).len(), 1);
        assert_eq!(
            form_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
