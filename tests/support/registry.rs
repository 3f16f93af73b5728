//! A real registry on 127.0.0.1 for the pull tests: Debian's `docker-registry` (the CNCF
//! distribution registry 2.8) as a child process, images pushed into it by `skopeo copy`, and
//! two helpers in front of it written here: a token server and a proxy that misbehaves.
//!
//! ```text
//!  test ──► [Proxy: cuts the first answer for each blob after N bytes, or answers 500]
//!       └─────────────┬──────────────────────────────────────────────────────────────┘
//!                     ▼
//!              docker-registry (filesystem storage in a tempdir, http on 127.0.0.1:<free port>)
//!                auth: none | htpasswd (Basic) | token ──► TokenServer (JWTs it trusts)
//! ```
//!
//! - Basic: an htpasswd file with one user, [`USER`]/[`PASSWORD`]. Its bcrypt hash is a
//!   constant (made once with Python's `crypt.crypt(PASSWORD, crypt.mksalt(METHOD_BLOWFISH))`,
//!   cost 4 so that checking it is cheap); the registry accepts `$2b$`.
//! - Token: the registry's `auth.token` trusts a self-signed RSA certificate that the test
//!   makes with the `openssl` CLI (`openssl req -x509 -newkey rsa:2048`); the token server
//!   checks the Basic credentials sent to it and issues RS256 JWTs whose `x5c` header carries
//!   that certificate, signed by `openssl dgst -sha256 -sign`, with the `access` the query's
//!   `scope` asks for. It records every scope asked for.
//! - HTTPS ([`Registry::start_tls`]): a CA and a server certificate for IP 127.0.0.1 signed by
//!   it, both made with the `openssl` CLI; the registry's `http.tls` serves the latter.
//! - Every helper serves 127.0.0.1 only, handles a bounded number of connections, and stops
//!   when dropped; the registry is killed when dropped.
//!
//! [`tools`] decides whether these tests can run: without `docker-registry` or `skopeo` they
//! are skipped with a visible notice, unless `OCIRENDER_REQUIRE_REGISTRY=1` (CI), where they
//! fail with an install hint.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

/// The test user.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "s3cret";
/// `PASSWORD` hashed with bcrypt (see the module documentation).
const HTPASSWD: &str = "tester:$2b$04$OSt7DpTUyod7KkbK86bF4uLRUnk3myvLffTmu3hDchV2kMKNliMdK";

/// The most connections a helper server handles before it stops by itself.
const MAX_CONNECTIONS: usize = 2000;

/// Whether the registry tests can run here; prints why not, or panics when CI requires them.
pub fn tools() -> bool {
    let missing: Vec<&str> = [
        ("docker-registry", "/usr/bin/docker-registry"),
        ("skopeo", "skopeo"),
        ("openssl", "openssl"),
    ]
    .into_iter()
    .filter(|(_, bin)| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
    })
    .map(|(pkg, _)| pkg)
    .collect();
    if missing.is_empty() {
        return true;
    }
    let hint = format!(
        "registry tests need {}: apt-get install -y docker-registry skopeo openssl",
        missing.join(", ")
    );
    if std::env::var("OCIRENDER_REQUIRE_REGISTRY").as_deref() == Ok("1") {
        panic!("{hint} (OCIRENDER_REQUIRE_REGISTRY=1)");
    }
    // Written to the file descriptor, not through eprintln!, which the test harness captures:
    // a skip must be seen. Once per test binary.
    static NOTICE: std::sync::Once = std::sync::Once::new();
    NOTICE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "SKIPPED registry tests: {hint}");
    });
    false
}

/// How the registry authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may push and pull.
    None,
    /// HTTP Basic against an htpasswd file.
    Basic,
    /// Bearer tokens from a [`TokenServer`].
    Token,
}

/// A running `docker-registry`.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Auth,
    token: Option<TokenServer>,
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with `auth` on plain HTTP and waits until it answers.
    pub fn start(auth: Auth) -> Registry {
        Registry::start_with(auth, false)
    }

    /// Starts a registry with `auth` on HTTPS, with a certificate for 127.0.0.1 signed by a
    /// CA made for it (see [`Registry::ca`]).
    pub fn start_tls(auth: Auth) -> Registry {
        Registry::start_with(auth, true)
    }

    fn start_with(auth: Auth, tls: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Basic => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{HTPASSWD}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: ocirender-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token => String::new(),
        };
        let token = (auth == Auth::Token).then(|| TokenServer::start(dir.path()));
        let auth_yaml = match &token {
            Some(t) => format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {}\n    \
                 issuer: {}\n    rootcertbundle: {}\n",
                t.port,
                TokenServer::SERVICE,
                TokenServer::ISSUER,
                t.cert.display()
            ),
            None => auth_yaml,
        };
        let ca = tls.then(|| make_server_cert(dir.path()));
        let tls_yaml = match &ca {
            Some(_) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.pem").display(),
                dir.path().join("server.key").display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: ocirender-test\n{tls_yaml}{auth_yaml}",
            dir.path().join("storage").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry {
            child,
            port,
            auth,
            token,
            ca,
            _dir: dir,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited ({status}): {log}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "docker-registry did not listen on 127.0.0.1:{} within 5 s",
            self.port
        );
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that signed an HTTPS registry's certificate.
    pub fn ca(&self) -> &Path {
        self.ca.as_deref().expect("this registry speaks plain HTTP")
    }

    /// The token server, for a registry with [`Auth::Token`].
    pub fn token_server(&self) -> &TokenServer {
        self.token
            .as_ref()
            .expect("this registry has no token server")
    }

    /// Pushes the manifest `layout_ref` names in the OCI layout `layout` to `repo:tag`. With
    /// `all`, a multi-platform index is pushed whole.
    pub fn push(&self, layout: &Path, layout_ref: &str, repo_tag: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if all {
            cmd.arg("--all");
        }
        if self.auth != Auth::None {
            cmd.arg(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        // skopeo must not pick up the machine's registries.conf or auth files.
        cmd.env(
            "REGISTRY_AUTH_FILE",
            self._dir.path().join("skopeo-auth.json"),
        );
        cmd.arg(format!("oci:{}:{layout_ref}", layout.display()));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host()));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {repo_tag} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a CA and a server certificate for 127.0.0.1 signed by it in `dir` (`server.pem`,
/// `server.key`); returns the CA's PEM file. A self-signed server certificate would not do:
/// webpki refuses a CA certificate as a server's.
fn make_server_cert(dir: &Path) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ocirender test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    dir.join("ca.pem")
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A thread accepting connections on 127.0.0.1 until dropped (or [`MAX_CONNECTIONS`]).
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming().take(MAX_CONNECTIONS) {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let h = handle.clone();
                std::thread::spawn(move || h(conn));
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP request head, as far as the helpers need it.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    raw: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request head (these helpers only see bodiless GETs); `None` at EOF.
fn read_head(r: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        raw.extend_from_slice(line.as_bytes());
        let trimmed = line.trim_end().to_owned();
        if trimmed.is_empty() {
            break;
        }
        lines.push(trimmed);
    }
    let mut first = lines.first()?.split_whitespace();
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Head {
        method,
        target,
        headers,
        raw,
    })
}

fn respond(mut conn: &TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes `%XX` escapes and `+` in a query value.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Issues JWTs the registry trusts, to clients that present [`USER`]/[`PASSWORD`].
pub struct TokenServer {
    port: u16,
    cert: PathBuf,
    scopes: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<usize>>,
    _server: Server,
}

impl TokenServer {
    const SERVICE: &'static str = "ocirender-test-registry";
    const ISSUER: &'static str = "ocirender-test-issuer";

    fn start(dir: &Path) -> TokenServer {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=ocirender-test-token"])
            .args(["-addext", "keyUsage=digitalSignature,keyCertSign"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl req");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "der", "-in"])
            .arg(&cert)
            .output()
            .expect("run openssl x509");
        assert!(der.status.success());
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (s2, r2) = (scopes.clone(), refused.clone());
        let server = Server::start(move |conn| {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let Some(head) = read_head(&mut r) else {
                return;
            };
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            );
            if head.header("authorization") != Some(expected.as_str()) {
                *r2.lock().unwrap() += 1;
                respond(
                    &conn,
                    "401 Unauthorized",
                    "application/json",
                    br#"{"details":"bad credentials"}"#,
                );
                return;
            }
            let query = head.target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let mut access = Vec::new();
            for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                if k == "scope" {
                    let scope = unescape(v);
                    s2.lock().unwrap().push(scope.clone());
                    // repository:NAME:ACTIONS (NAME may hold ':' only as a port, never here).
                    let mut parts = scope.splitn(2, ':');
                    let typ = parts.next().unwrap_or("").to_owned();
                    let rest = parts.next().unwrap_or("");
                    if let Some((name, actions)) = rest.rsplit_once(':') {
                        access.push(serde_json::json!({
                            "type": typ, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>(),
                        }));
                    }
                }
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": Self::ISSUER, "sub": USER, "aud": Self::SERVICE,
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let token =
                sign(&key, &signing_input).map(|sig| format!("{signing_input}.{}", b64url(&sig)));
            match token {
                Some(token) => {
                    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
                    respond(&conn, "200 OK", "application/json", body.as_bytes());
                }
                None => respond(
                    &conn,
                    "500 Internal Server Error",
                    "text/plain",
                    b"signing failed",
                ),
            }
        });
        TokenServer {
            port: server.port,
            cert,
            scopes,
            refused,
            _server: server,
        }
    }

    /// Every scope asked for with good credentials, in order.
    pub fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }

    /// How many token requests had missing or wrong credentials.
    pub fn refused(&self) -> usize {
        *self.refused.lock().unwrap()
    }
}

/// RS256: RSASSA-PKCS1-v1_5 with SHA-256, which is what `openssl dgst -sha256 -sign` computes
/// with an RSA key.
fn sign(key: &Path, input: &str) -> Option<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// What the [`Proxy`] does to blob downloads.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Forward everything faithfully.
    None,
    /// The first answer for each blob is cut off after this many body bytes (the connection
    /// closes), as a flaky network would.
    CutFirstAfter(usize),
    /// Every request for the blob with this digest gets `500 Internal Server Error`.
    Fail500(String),
}

/// An HTTP proxy in front of a registry that injects a [`Fault`] and records blob requests.
pub struct Proxy {
    log: Arc<Mutex<Vec<BlobRequest>>>,
    server: Server,
}

/// A blob request the proxy saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRequest {
    /// The digest asked for.
    pub digest: String,
    /// Its `Range` header, if any.
    pub range: Option<String>,
    /// Whether the proxy cut or failed this answer.
    pub sabotaged: bool,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:port`).
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let upstream = upstream.to_owned();
        let log: Arc<Mutex<Vec<BlobRequest>>> = Arc::new(Mutex::new(Vec::new()));
        let cut_done: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(BTreeSet::new()));
        let log2 = log.clone();
        let server = Server::start(move |client| {
            let mut r = BufReader::new(client.try_clone().unwrap());
            // One request per connection: the proxy asks the registry to close after it, and
            // says so to the client, so each answer can be judged on its own.
            let Some(head) = read_head(&mut r) else {
                return;
            };
            let blob = head
                .target
                .split_once("/blobs/")
                .map(|(_, d)| d.split('?').next().unwrap_or(d).to_owned())
                .filter(|_| head.method == "GET");
            let mut sabotage_after = None;
            if let Some(digest) = &blob {
                let sabotaged = match &fault {
                    Fault::None => false,
                    Fault::Fail500(d) => d == digest,
                    Fault::CutFirstAfter(n) => {
                        let first = cut_done.lock().unwrap().insert(digest.clone());
                        if first {
                            sabotage_after = Some(*n);
                        }
                        first
                    }
                };
                log2.lock().unwrap().push(BlobRequest {
                    digest: digest.clone(),
                    range: head.header("range").map(str::to_owned),
                    sabotaged,
                });
                if sabotaged && matches!(fault, Fault::Fail500(_)) {
                    respond(
                        &client,
                        "500 Internal Server Error",
                        "application/json",
                        br#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#,
                    );
                    return;
                }
            }
            let Ok(mut up) = TcpStream::connect(&upstream) else {
                respond(&client, "502 Bad Gateway", "text/plain", b"no upstream");
                return;
            };
            let head_text = String::from_utf8_lossy(&head.raw).into_owned();
            let mut rewritten = String::new();
            for line in head_text.split("\r\n") {
                if line.to_ascii_lowercase().starts_with("connection:") {
                    continue;
                }
                if line.is_empty() {
                    break;
                }
                rewritten.push_str(line);
                rewritten.push_str("\r\n");
            }
            rewritten.push_str("Connection: close\r\n\r\n");
            if up.write_all(rewritten.as_bytes()).is_err() {
                return;
            }
            pump(&mut up, &client, sabotage_after);
            let _ = client.shutdown(Shutdown::Both);
        });
        Proxy { log, server }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    /// The blob requests seen so far.
    pub fn blob_requests(&self) -> Vec<BlobRequest> {
        self.log.lock().unwrap().clone()
    }
}

/// Copies the upstream answer to the client; with `cut_after`, stops after that many bytes
/// past the end of the answer's head.
fn pump(up: &mut TcpStream, mut client: &TcpStream, cut_after: Option<usize>) {
    let mut buf = vec![0u8; 16 << 10];
    let mut head = Vec::new();
    let mut body_sent: Option<usize> = None;
    loop {
        let n = match up.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        if body_sent.is_none() {
            head.extend_from_slice(data);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let already = head.len() - n; // bytes of `head` from earlier reads
                let split = end + 4 - already;
                if client.write_all(&data[..split]).is_err() {
                    return;
                }
                data = &data[split..];
                body_sent = Some(0);
            } else {
                if client.write_all(data).is_err() {
                    return;
                }
                continue;
            }
        }
        let sent = body_sent.unwrap_or(0);
        let allowed = match cut_after {
            Some(limit) => limit.saturating_sub(sent).min(data.len()),
            None => data.len(),
        };
        if client.write_all(&data[..allowed]).is_err() {
            return;
        }
        body_sent = Some(sent + allowed);
        if allowed < data.len() {
            return;
        }
    }
}
