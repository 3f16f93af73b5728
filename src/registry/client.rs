//! One repository on one registry, over HTTP: requests with authentication and retries.
//!
//! ```text
//! get(path) ──► send with the current Authorization ──► 401? ──► WWW-Authenticate challenge
//!                     ▲                                            │ Basic:  user:password
//!                     └────────── once more ◄──────────────────────┤ Bearer: token from the realm
//!                                                                  │  (GET with Basic, or POST a
//!                                                                  │   refresh token), cached
//! get_bytes(path) = get + read the body, retried with backoff on transient failures
//! ```
//!
//! Authentication is learned from the registry, never assumed: the first request goes out
//! without credentials, and the 401's challenge says which scheme to use. Credentials are
//! looked up (auth files, credential helpers) only then, so an anonymous pull never runs a
//! helper. The token is shared by every concurrent download of the repository; a token that
//! stops working (expired) is replaced once per failing request.
//!
//! A failure is transient when trying again may help: no connection, a connection that broke
//! or stalled (read timeout), and the statuses 408, 429, 500, 502, 503, 504. Everything else is
//! final at once. Waits double from [`RegistryOptions::retry_delay`] up to 10 s; a
//! `Retry-After` in seconds is honoured up to the same limit.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

use crate::error::{Error, Result};

use super::challenge::{self, Challenge};
use super::credentials::{self, Credentials};
use super::options::RegistryOptions;
use super::problem::AuthProblem;

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// The most of an error body read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Connects time out after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A repository on a registry.
pub(crate) struct Client {
    http: reqwest::Client,
    /// The registry as references name it (for credentials and messages).
    registry: String,
    /// `http(s)://host[:port]`.
    base: String,
    repository: String,
    explicit: Option<Credentials>,
    looked_up: OnceCell<Option<Credentials>>,
    auth: Mutex<Auth>,
    attempts: u32,
    retry_delay: Duration,
}

/// What goes in the `Authorization` header.
#[derive(Clone, Default)]
enum Auth {
    /// Nothing yet (no challenge seen).
    #[default]
    Anonymous,
    /// `Basic …` or `Bearer …`.
    Header(HeaderValue),
}

impl Auth {
    fn header(&self) -> Option<HeaderValue> {
        match self {
            Auth::Anonymous => None,
            Auth::Header(h) => Some(h.clone()),
        }
    }
}

/// Whether a failed attempt is worth repeating.
pub(crate) enum Attempt<T> {
    /// It worked.
    Done(T),
    /// Try again after a wait (at least the given one, if the server asked).
    Transient(Error, Option<Duration>),
    /// Give up.
    Final(Error),
}

impl Client {
    /// A client for `repository` on `registry`, reached at `host` (the registry's API host or a
    /// mirror).
    pub(crate) fn new(
        registry: &str,
        host: &str,
        repository: &str,
        options: &RegistryOptions,
    ) -> Result<Client> {
        let scheme = if options.insecure { "http" } else { "https" };
        let setup = |request: String, e: reqwest::Error| Error::Transport {
            registry: registry.to_owned(),
            request,
            attempts: 1,
            source: Box::new(e),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ocirender/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(options.read_timeout)
            .https_only(!options.insecure);
        for path in &options.ca_certificates {
            let pem = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("reading certificates from {}", path.display()), e))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| setup("setting up the HTTP client".to_owned(), e))?;
        Ok(Client {
            http,
            registry: registry.to_owned(),
            base: format!("{scheme}://{host}"),
            repository: repository.to_owned(),
            explicit: options.credentials.clone(),
            looked_up: OnceCell::new(),
            auth: Mutex::new(Auth::Anonymous),
            attempts: options.attempts.max(1),
            retry_delay: options.retry_delay,
        })
    }

    /// The registry as references name it.
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository.
    pub(crate) fn repository(&self) -> &str {
        &self.repository
    }

    /// How many attempts a request gets.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before attempt `attempt + 1` (attempt 1 is the first).
    pub(crate) fn backoff(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let doubled = self
            .retry_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        doubled.max(asked.unwrap_or_default()).min(MAX_DELAY)
    }

    /// `GET /v2/<repository>/<what>` once (with authentication), returning any answer but a
    /// 401 that credentials cannot fix.
    pub(crate) async fn get(
        &self,
        what: &str,
        accept: Option<&str>,
        from: Option<u64>,
    ) -> Result<Response, (Error, bool)> {
        let path = format!("/v2/{}/{what}", self.repository);
        let mut headers = HeaderMap::new();
        if let Some(a) = accept.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(ACCEPT, a);
        }
        if let Some(from) = from.filter(|&f| f > 0) {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={from}-")) {
                headers.insert(RANGE, v);
            }
        }
        let mut refreshed = false;
        loop {
            let sent = self.auth.lock().await.header();
            let mut req = self
                .http
                .get(format!("{}{path}", self.base))
                .headers(headers.clone());
            if let Some(h) = &sent {
                req = req.header(AUTHORIZATION, h.clone());
            }
            let resp = req.send().await.map_err(|e| {
                let again = worth_retrying(&e);
                (self.transport(&path, e), again)
            })?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if refreshed {
                return Err((self.unauthorized(sent.is_some()).await, false));
            }
            self.authenticate(resp.headers(), sent)
                .await
                .map_err(|e| (e, false))?;
            refreshed = true;
        }
    }

    /// `GET /v2/<repository>/<what>` and its whole body (at most `limit` bytes), retried on
    /// transient failures; a status other than 200 is an error.
    pub(crate) async fn get_bytes(
        &self,
        what: &str,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<u8>, HeaderMap)> {
        let request = format!("GET /v2/{}/{what}", self.repository);
        let mut attempt = 1;
        loop {
            let outcome = match self.get(what, accept, None).await {
                Err((e, true)) => Attempt::Transient(e, None),
                Err((e, false)) => Attempt::Final(e),
                Ok(resp) if resp.status() == StatusCode::OK => {
                    let headers = resp.headers().clone();
                    match read_limited(resp, limit).await {
                        Ok(Some(body)) => Attempt::Done((body, headers)),
                        Ok(None) => Attempt::Final(Error::DocumentTooLarge {
                            what: request.clone(),
                            size: limit + 1,
                            limit,
                        }),
                        Err(e) => Attempt::Transient(self.transport(&request, e), None),
                    }
                }
                Ok(resp) => self.status_failure(&request, resp, attempt).await,
            };
            match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Final(e) => return Err(e),
                Attempt::Transient(e, asked) => {
                    if attempt >= self.attempts {
                        return Err(with_attempts(e, attempt));
                    }
                    tokio::time::sleep(self.backoff(attempt, asked)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Classifies an answer that is not what was asked for.
    pub(crate) async fn status_failure<T>(
        &self,
        request: &str,
        resp: Response,
        attempt: u32,
    ) -> Attempt<T> {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = error_message(resp).await;
        let e = Error::HttpStatus {
            registry: self.registry.clone(),
            request: request.to_owned(),
            status: status.to_string(),
            message,
            attempts: attempt,
        };
        if is_transient(status) {
            Attempt::Transient(e, retry_after)
        } else {
            Attempt::Final(e)
        }
    }

    pub(crate) fn transport(&self, request: &str, e: reqwest::Error) -> Error {
        Error::Transport {
            registry: self.registry.clone(),
            request: if request.starts_with('/') {
                format!("GET {request}")
            } else {
                request.to_owned()
            },
            attempts: 1,
            source: Box::new(e),
        }
    }

    /// The token scope asked for: pulling this repository (none for a bare login check).
    fn scope(&self) -> String {
        if self.repository.is_empty() {
            String::new()
        } else {
            format!("repository:{}:pull", self.repository)
        }
    }

    async fn credentials(&self) -> Result<Option<Credentials>> {
        if let Some(c) = &self.explicit {
            return Ok(Some(c.clone()));
        }
        self.looked_up
            .get_or_try_init(|| async { credentials::lookup(&self.registry, &self.repository) })
            .await
            .cloned()
    }

    async fn unauthorized(&self, sent_something: bool) -> Error {
        let with_credentials = sent_something && self.credentials().await.ok().flatten().is_some();
        Error::Unauthorized {
            registry: self.registry.clone(),
            scope: self.scope_name(),
            with_credentials,
        }
    }

    fn scope_name(&self) -> String {
        match self.scope() {
            s if s.is_empty() => "its API".to_owned(),
            s => s,
        }
    }

    /// Answers a 401's challenge: sets [`Client::auth`] to what the challenge asks for. `sent`
    /// is the header the refused request carried; if another request already replaced it,
    /// that replacement is used as is.
    async fn authenticate(&self, headers: &HeaderMap, sent: Option<HeaderValue>) -> Result<()> {
        let mut auth = self.auth.lock().await;
        if auth.header() != sent {
            return Ok(());
        }
        let protocol = |problem| Error::AuthProtocol {
            registry: self.registry.clone(),
            problem,
        };
        let header = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| protocol(AuthProblem::NoChallenge))?;
        let challenges = challenge::parse(header).ok_or_else(|| {
            protocol(AuthProblem::UnreadableChallenge {
                header: header.to_owned(),
            })
        })?;
        let creds = self.credentials().await?;
        let new = if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(c, creds.as_ref()).await?;
            format!("Bearer {token}")
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            match &creds {
                Some(Credentials::Basic { username, password }) if sent.is_none() => {
                    use base64::Engine;
                    let raw = format!("{username}:{password}");
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                }
                _ => return Err(self.unauthorized(sent.is_some()).await),
            }
        } else {
            return Err(protocol(AuthProblem::UnsupportedScheme {
                header: header.to_owned(),
            }));
        };
        let value =
            HeaderValue::from_str(&new).map_err(|_| protocol(AuthProblem::TokenNotHeaderSafe))?;
        *auth = Auth::Header(value);
        Ok(())
    }

    /// Gets a bearer token for this repository from the challenge's realm.
    async fn fetch_token(&self, c: &Challenge, creds: Option<&Credentials>) -> Result<String> {
        let protocol = |problem| Error::AuthProtocol {
            registry: self.registry.clone(),
            problem,
        };
        let realm = c
            .param("realm")
            .ok_or_else(|| protocol(AuthProblem::NoRealm))?;
        let realm_url = reqwest::Url::parse(realm).map_err(|_| {
            protocol(AuthProblem::RealmNotUrl {
                realm: realm.to_owned(),
            })
        })?;
        if realm_url.scheme() != "https"
            && !(realm_url.scheme() == "http" && self.base.starts_with("http:"))
        {
            return Err(protocol(AuthProblem::RealmNotHttps {
                realm: realm.to_owned(),
            }));
        }
        let service = c.param("service").unwrap_or_default();
        let scope = self.scope();
        let request = format!("token from {realm}");
        let mut attempt = 1;
        loop {
            let req = match creds {
                Some(Credentials::IdentityToken(refresh)) => {
                    self.http.post(realm_url.clone()).form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                        ("service", service),
                        ("scope", scope.as_str()),
                        ("client_id", "ocirender"),
                    ])
                }
                Some(Credentials::Basic { username, password }) => {
                    let mut q = query(service, &scope);
                    q.push(("account", username.as_str()));
                    self.http
                        .get(realm_url.clone())
                        .query(&q)
                        .basic_auth(username, Some(password))
                }
                None => self
                    .http
                    .get(realm_url.clone())
                    .query(&query(service, &scope)),
            };
            let outcome = match req.send().await {
                Err(e) if !worth_retrying(&e) => Attempt::Final(self.transport(&request, e)),
                Err(e) => Attempt::Transient(self.transport(&request, e), None),
                Ok(resp) if resp.status().is_success() => {
                    match read_limited(resp, MAX_ERROR_BODY as u64).await {
                        Ok(Some(body)) => Attempt::Done(body),
                        Ok(None) => Attempt::Final(protocol(AuthProblem::TokenAnswerTooLarge)),
                        Err(e) => Attempt::Transient(self.transport(&request, e), None),
                    }
                }
                Ok(resp)
                    if matches!(
                        resp.status(),
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    ) =>
                {
                    Attempt::Final(Error::Unauthorized {
                        registry: self.registry.clone(),
                        scope: self.scope_name(),
                        with_credentials: creds.is_some(),
                    })
                }
                Ok(resp) => self.status_failure(&request, resp, attempt).await,
            };
            match outcome {
                Attempt::Done(body) => {
                    let answer: TokenAnswer =
                        serde_json::from_slice(&body).map_err(|source| Error::Json {
                            what: request.clone(),
                            source,
                        })?;
                    return answer
                        .token
                        .or(answer.access_token)
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| protocol(AuthProblem::NoToken));
                }
                Attempt::Final(e) => return Err(e),
                Attempt::Transient(e, asked) => {
                    if attempt >= self.attempts {
                        return Err(with_attempts(e, attempt));
                    }
                    tokio::time::sleep(self.backoff(attempt, asked)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Checks that the registry accepts the credentials (for `login`): `GET /v2/`, answering
    /// its challenge with them; a bearer registry is asked for a token.
    pub(crate) async fn check_login(&self) -> Result<()> {
        let resp = self
            .http
            .get(format!("{}/v2/", self.base))
            .send()
            .await
            .map_err(|e| self.transport("/v2/", e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != StatusCode::UNAUTHORIZED {
            return match self.status_failure::<()>("GET /v2/", resp, 1).await {
                Attempt::Transient(e, _) | Attempt::Final(e) => Err(e),
                Attempt::Done(()) => Ok(()),
            };
        }
        self.authenticate(resp.headers(), None).await?;
        let header = self.auth.lock().await.header();
        let mut req = self.http.get(format!("{}/v2/", self.base));
        if let Some(h) = header {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await.map_err(|e| self.transport("/v2/", e))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(self.unauthorized(true).await),
            _ => match self.status_failure::<()>("GET /v2/", resp, 1).await {
                Attempt::Transient(e, _) | Attempt::Final(e) => Err(e),
                Attempt::Done(()) => Ok(()),
            },
        }
    }
}

/// The token request's query: `service` and `scope` when there are any.
fn query<'a>(service: &'a str, scope: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut q = Vec::new();
    if !service.is_empty() {
        q.push(("service", service));
    }
    if !scope.is_empty() {
        q.push(("scope", scope));
    }
    q
}

/// A token server's answer (docker's token spec; OAuth2 servers say `access_token`).
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// The statuses worth trying again.
pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Records the number of attempts in a registry error.
pub(crate) fn with_attempts(e: Error, n: u32) -> Error {
    match e {
        Error::HttpStatus {
            registry,
            request,
            status,
            message,
            ..
        } => Error::HttpStatus {
            registry,
            request,
            status,
            message,
            attempts: n,
        },
        Error::Transport {
            registry,
            request,
            source,
            ..
        } => Error::Transport {
            registry,
            request,
            attempts: n,
            source,
        },
        e => e,
    }
}

/// Reads a body of at most `limit` bytes; `None` if it is longer.
async fn read_limited(mut resp: Response, limit: u64) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// The message of a registry's error body (`{"errors":[{"code":…,"message":…}]}`), or empty.
async fn error_message(resp: Response) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(Some(body)) = read_limited(resp, MAX_ERROR_BODY as u64).await else {
        return String::new();
    };
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|i| match (i.code.is_empty(), i.message.is_empty()) {
                (false, false) => format!("{}: {}", i.code, i.message),
                (false, true) => i.code.clone(),
                _ => i.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::new(),
    }
}

/// Whether a request that failed to get an answer may succeed when sent again. Not when the
/// TLS handshake was refused (an untrusted or mismatched certificate, TLS spoken to a
/// plain-HTTP server): rustls reports those as invalid data while connecting, and they fail the
/// same way every time. Resets, refusals and timeouts may pass.
fn worth_retrying(e: &reqwest::Error) -> bool {
    if !e.is_connect() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        match s.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::InvalidData => return false,
            // An io::Error's own `source` skips the error it wraps; `get_ref` is that error.
            Some(io) => {
                source = io
                    .get_ref()
                    .map(|inner| inner as &(dyn std::error::Error + 'static))
            }
            None => source = s.source(),
        }
    }
    true
}
