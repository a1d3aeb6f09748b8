//! Answering the registry's challenges: the auth mode learnt from the `/v2/` ping (anonymous,
//! Basic or Bearer), the `Authorization` header for a request, Bearer tokens fetched from the
//! realm and cached per scope set, and `send`, which answers a 401 once (a fresh token, or the
//! challenge of a repository that asks for more than `/v2/` did) and follows redirects without
//! credentials to other hosts.

use super::auth::{self, Challenge};
use super::client::{AuthMode, RegistryClient};
use super::credentials::{Credentials, Secret};
use super::error::{RegistryError, redact_url};
use super::reference;
use super::transport::{Payload, Req, Target, header};
use base64::Engine as _;
use std::collections::HashMap;
use ureq::http;

impl RegistryClient {
    /// The auth mode, pinging `/v2/` the first time.
    pub(super) fn auth_mode(&self, what: &str) -> Result<AuthMode, RegistryError> {
        if let Some(m) = self.lock_mode().clone() {
            return Ok(m);
        }
        let target = self.target("/v2/");
        let resp = self.raw_with(&target, "GET", &[], &Payload::Empty, true, what)?;
        let mode = match resp.status().as_u16() {
            200..=299 => AuthMode::Anonymous,
            401 => {
                let challenge =
                    header(&resp, "www-authenticate").and_then(|h| auth::parse_challenge(&h));
                match challenge {
                    Some(Challenge::Basic { .. }) => AuthMode::Basic,
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        AuthMode::Bearer { realm, service }
                    }
                    None => {
                        return Err(RegistryError::Protocol {
                            what: what.to_string(),
                            detail: format!(
                                "{} answered 401 without a Basic or Bearer WWW-Authenticate challenge",
                                redact_url(&target.url())
                            ),
                        });
                    }
                }
            }
            _ => return self.expect(resp, &[200], what).map(|_| AuthMode::Anonymous),
        };
        *self.lock_mode() = Some(mode.clone());
        Ok(mode)
    }

    pub(super) fn lock_mode(&self) -> std::sync::MutexGuard<'_, Option<AuthMode>> {
        self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Authorization` value for the registry host, if any.
    pub(super) fn authorization(
        &self,
        mode: &AuthMode,
        scopes: &[String],
        what: &str,
    ) -> Result<Option<String>, RegistryError> {
        match (mode, &self.credentials) {
            (AuthMode::Anonymous, _) | (AuthMode::Basic, None) => Ok(None),
            (AuthMode::Basic, Some(Credentials::Basic { username, password })) => {
                if !self.https && !reference::is_loopback_host(reference::host_of(&self.registry)) {
                    return Err(self.http_creds_refused(&self.registry));
                }
                Ok(Some(basic_header(username, password)))
            }
            (AuthMode::Basic, Some(Credentials::IdentityToken(_))) => Err(RegistryError::Auth {
                host: self.registry.clone(),
                detail: "the registry wants a user name and password, but only an identity token is configured".into(),
            }),
            (AuthMode::Bearer { realm, service }, _) => {
                let key = scopes.join(" ");
                if let Some(t) = self.lock_tokens().get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(realm, service.as_deref(), scopes, what)?;
                self.lock_tokens().insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    pub(super) fn http_creds_refused(&self, authority: &str) -> RegistryError {
        RegistryError::Policy(format!(
            "refusing to send credentials over plain HTTP to non-loopback host {authority}: use https"
        ))
    }

    /// Exchanges the credentials (or nothing) for a bearer token at the realm.
    pub(super) fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        what: &str,
    ) -> Result<String, RegistryError> {
        let realm_t = Target::parse(realm).ok_or_else(|| RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "the token realm {:?} is not an http(s) URL",
                redact_url(realm)
            ),
        })?;
        let realm_loopback = reference::is_loopback_host(realm_t.host());
        if !realm_t.https && !realm_loopback && self.credentials.is_some() {
            return Err(self.http_creds_refused(&realm_t.authority));
        }
        if self.https && !realm_t.https && !realm_loopback {
            return Err(RegistryError::Policy(format!(
                "the https registry {} sends tokens from a plain-http realm {}: refused",
                self.registry,
                redact_url(realm)
            )));
        }
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", auth::form_encode(s)));
        }
        let (method, body, mut headers): (
            &'static str,
            Option<String>,
            Vec<(&'static str, String)>,
        ) = match &self.credentials {
            Some(Credentials::IdentityToken(tok)) => {
                let mut form = vec![
                    "grant_type=refresh_token".to_string(),
                    "client_id=shipit".to_string(),
                    format!("refresh_token={}", auth::form_encode(tok.expose())),
                    format!("scope={}", auth::form_encode(&scopes.join(" "))),
                ];
                form.append(&mut query);
                (
                    "POST",
                    Some(form.join("&")),
                    vec![("Content-Type", "application/x-www-form-urlencoded".into())],
                )
            }
            Some(Credentials::Basic { username, password }) => {
                query.extend(
                    scopes
                        .iter()
                        .map(|s| format!("scope={}", auth::form_encode(s))),
                );
                (
                    "GET",
                    None,
                    vec![("Authorization", basic_header(username, password))],
                )
            }
            None => {
                query.extend(
                    scopes
                        .iter()
                        .map(|s| format!("scope={}", auth::form_encode(s))),
                );
                ("GET", None, vec![])
            }
        };
        let mut target = realm_t.clone();
        for q in &query {
            target = target.with_query(q);
        }
        let payload = match &body {
            Some(b) => {
                headers.push(("Content-Length", b.len().to_string()));
                Payload::Bytes(b.as_bytes())
            }
            None => Payload::Empty,
        };
        let use_ca = target.authority == self.registry;
        let resp = self.raw_with(&target, method, &headers, &payload, use_ca, what)?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(RegistryError::Auth {
                    host: self.registry.clone(),
                    detail: format!(
                        "the token server {} answered {}",
                        redact_url(&realm_t.url()),
                        resp.status().as_u16()
                    ),
                });
            }
            _ => return self.expect(resp, &[200], what).map(|_| String::new()),
        }
        let parsed: auth::TokenResponse = resp
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| RegistryError::Protocol {
                what: what.to_string(),
                detail: format!(
                    "the token server {} did not answer with token JSON",
                    redact_url(&realm_t.url())
                ),
            })?;
        let token = parsed.into_token().ok_or_else(|| RegistryError::Protocol {
            what: what.to_string(),
            detail: format!(
                "the token server {} answered without a token",
                redact_url(&realm_t.url())
            ),
        })?;
        if self.opts.mask_tokens {
            self.opts.mask_sink.add_mask(&token);
        }
        Ok(token)
    }

    /// Sends a request to the registry with auth, one re-auth on 401, and redirects followed
    /// (GET/HEAD only) without credentials to other hosts.
    pub(super) fn send(&self, req: Req<'_>) -> Result<http::Response<ureq::Body>, RegistryError> {
        self.check_cancel(req.what)?;
        let mut mode = self.auth_mode(req.what)?;
        let mut reauthed = false;
        let mut answered = false;
        let mut target = req.target.clone();
        let mut redirects = 0;
        loop {
            let on_registry = self.is_registry_host(&target);
            let mut headers = req.headers.clone();
            let mut auth_header = None;
            if on_registry {
                auth_header = self.authorization(&mode, req.scopes, req.what)?;
                if let Some(a) = &auth_header {
                    headers.push(("Authorization", a.clone()));
                }
            }
            let resp = self.raw_with(
                &target,
                req.method,
                &headers,
                &req.payload,
                on_registry,
                req.what,
            )?;
            let status = resp.status().as_u16();
            if status == 401 && on_registry {
                let asked = header(&resp, "www-authenticate")
                    .and_then(|h| auth::parse_challenge(&h))
                    .map(AuthMode::from_challenge);
                if let Some(asked) = asked
                    && !answered
                    && !mode.answers(&asked)
                    && (self.credentials.is_some() || matches!(asked, AuthMode::Bearer { .. }))
                {
                    // The repository asks for more than `/v2/` did (an anonymous ping, then a
                    // Basic or Bearer challenge here): answer it, once for this request, and
                    // answer it up front from now on.
                    *self.lock_mode() = Some(asked.clone());
                    mode = asked;
                    answered = true;
                    continue;
                }
                if let (AuthMode::Bearer { .. }, false) = (&mode, reauthed) {
                    // An expired token: forget it and fetch a fresh one, once.
                    self.lock_tokens().remove(&req.scopes.join(" "));
                    reauthed = true;
                    continue;
                }
                let detail = match (&self.credentials, &auth_header) {
                    (None, _) => {
                        "no credentials configured and the registry requires them".to_string()
                    }
                    _ => format!("{} answered 401", redact_url(&target.url())),
                };
                return Err(RegistryError::Auth {
                    host: self.registry.clone(),
                    detail,
                });
            }
            let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if is_redirect && matches!(req.method, "GET" | "HEAD") {
                redirects += 1;
                if redirects > 5 {
                    return Err(RegistryError::Protocol {
                        what: req.what.to_string(),
                        detail: format!(
                            "more than 5 redirects from {}",
                            redact_url(&req.target.url())
                        ),
                    });
                }
                target = self.location(&target, &resp, req.what)?;
                continue;
            }
            return Ok(resp);
        }
    }
}

pub(super) fn basic_header(user: &str, password: &Secret) -> String {
    let raw = format!("{user}:{}", password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}
