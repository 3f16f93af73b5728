//! Registry credentials where docker, podman and skopeo keep them.
//!
//! ```text
//! lookup(registry, repository):
//!   $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json   (podman, skopeo)
//!   $XDG_CONFIG_HOME/containers/auth.json (~/.config/…)
//!   $DOCKER_CONFIG/config.json, else ~/.docker/config.json            (docker)
//!     first file that knows the registry wins:
//!       credHelpers[registry] ─► docker-credential-NAME get   (when the helper is installed)
//!       auths["quay.io/org/repo"], auths["quay.io/org"], auths["quay.io"] (most specific first;
//!         keys may be spelled https://host/v1/)
//!       credsStore ─► docker-credential-NAME get
//! ```
//!
//! `login` writes to `$REGISTRY_AUTH_FILE` when set, else to docker's `config.json`, through
//! the file's credential helper when it names one; `logout` removes the registry from every file
//! (and helper) that has it. Files are rewritten whole, atomically, mode 0600, keeping every key
//! ocirender does not know.
//!
//! Why these files: a user who ran `docker login` or `podman login` must not have to log in
//! again for ocirender, and one who runs `ocirender login` gets credentials docker and skopeo
//! read too.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

use super::reference::{normalize_registry, DOCKER_HUB};

/// The key docker writes Docker Hub's credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The largest auth file read.
const MAX_AUTH_FILE: u64 = 4 << 20;

/// What to authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and a password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`, or a helper's `<token>` user),
    /// exchanged at the token server for access tokens.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, ***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

/// The auth files read, in order (see the module documentation).
pub fn auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut files = Vec::new();
    match env("REGISTRY_AUTH_FILE") {
        Some(f) => files.push(f),
        None => {
            if let Some(run) = env("XDG_RUNTIME_DIR") {
                files.push(run.join("containers/auth.json"));
            }
        }
    }
    if let Some(conf) = env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
    {
        files.push(conf.join("containers/auth.json"));
    }
    files.extend(docker_config());
    files.dedup();
    files
}

/// The file `login` writes: `$REGISTRY_AUTH_FILE`, else docker's `config.json`.
pub fn login_file() -> Option<PathBuf> {
    std::env::var_os("REGISTRY_AUTH_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(docker_config)
}

fn docker_config() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("DOCKER_CONFIG")
        .map(|d| d.join("config.json"))
        .or_else(|| env("HOME").map(|h| h.join(".docker/config.json")))
}

/// The credentials for `repository` on `registry` (as references name it), from the first auth
/// file that has any; `None` when no file does.
pub fn lookup(registry: &str, repository: &str) -> Result<Option<Credentials>> {
    lookup_in(&auth_files(), registry, repository)
}

/// [`lookup`] over the given files.
pub fn lookup_in(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    for file in files {
        let Some(doc) = read_auth_file(file)? else {
            continue;
        };
        if let Some(helper) = helper_for(&doc, registry, false) {
            if let Some(c) = helper_get(&helper, registry)? {
                return Ok(Some(c));
            }
        }
        if let Some(c) = from_auths(&doc, file, registry, repository)? {
            return Ok(Some(c));
        }
        if let Some(helper) = helper_for(&doc, registry, true) {
            if let Some(c) = helper_get(&helper, registry)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// Stores `creds` for `registry` in [`login_file`] (or its credential helper); returns where.
pub fn store(registry: &str, creds: &Credentials) -> Result<String> {
    store_in(&login_file().ok_or(Error::NoAuthFile)?, registry, creds)
}

/// [`store`] into `file`.
pub fn store_in(file: &Path, registry: &str, creds: &Credentials) -> Result<String> {
    let file = file.to_path_buf();
    let mut doc = read_auth_file(&file)?.unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(helper) = helper_for(&doc, registry, true) {
        helper_store(&helper, registry, creds)?;
        return Ok(format!("credential helper docker-credential-{helper}"));
    }
    let entry = match creds {
        Credentials::Basic { username, password } => {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            serde_json::json!({ "auth": auth })
        }
        Credentials::IdentityToken(t) => serde_json::json!({ "identitytoken": t }),
    };
    let root = as_object(&mut doc, &file)?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let auths = auths
        .as_object_mut()
        .ok_or_else(|| Error::InvalidDocument {
            what: file.display().to_string(),
            problem: "\"auths\" is not an object",
        })?;
    // Replace every spelling of this registry's key by the canonical one.
    auths.retain(|k, _| key_registry(k).0 != registry || key_registry(k).1.is_some());
    auths.insert(server_key(registry), entry);
    write_auth_file(&file, &doc)?;
    Ok(file.display().to_string())
}

/// Removes `registry`'s credentials from every auth file and helper that has them; returns
/// whether any had.
pub fn erase(registry: &str) -> Result<bool> {
    let mut files = auth_files();
    files.extend(login_file());
    files.dedup();
    erase_in(&files, registry)
}

/// [`erase`] from `files`.
pub fn erase_in(files: &[PathBuf], registry: &str) -> Result<bool> {
    let mut found = false;
    for file in files {
        let Some(mut doc) = read_auth_file(file)? else {
            continue;
        };
        if let Some(helper) = helper_for(&doc, registry, true) {
            found |= helper_erase(&helper, registry)?;
        }
        let root = as_object(&mut doc, file)?;
        let Some(auths) = root.get_mut("auths").and_then(Value::as_object_mut) else {
            continue;
        };
        let before = auths.len();
        auths.retain(|k, _| key_registry(k).0 != registry);
        if auths.len() != before {
            found = true;
            write_auth_file(file, &doc)?;
        }
    }
    Ok(found)
}

/// The key docker uses for `registry` in `auths` and with helpers.
fn server_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// A key of `auths` as (registry, optional repository namespace). Keys with a scheme are docker
/// style (`https://host/v1/` → host); keys without may name a namespace (`quay.io/org`).
fn key_registry(key: &str) -> (String, Option<String>) {
    if key.contains("://") {
        return (normalize_registry(key), None);
    }
    match key.split_once('/') {
        Some((host, path)) if !path.is_empty() => (
            normalize_registry(host),
            Some(path.trim_end_matches('/').to_owned()),
        ),
        _ => (normalize_registry(key), None),
    }
}

fn read_auth_file(path: &Path) -> Result<Option<Value>> {
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_AUTH_FILE => {
            return Err(Error::DocumentTooLarge {
                what: path.display().to_string(),
                size: m.len(),
                limit: MAX_AUTH_FILE,
            })
        }
        Ok(_) => std::fs::read(path).map_err(|e| Error::io("read", path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Value::Object(Map::new())));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })
}

fn as_object<'a>(doc: &'a mut Value, file: &Path) -> Result<&'a mut Map<String, Value>> {
    doc.as_object_mut().ok_or_else(|| Error::InvalidDocument {
        what: file.display().to_string(),
        problem: "is not a JSON object",
    })
}

fn write_auth_file(path: &Path, doc: &Value) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })?;
    bytes.push(b'\n');
    tmp.write_all(&bytes)
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    // tempfile creates the file 0600, which is what an auth file must be.
    tmp.persist(path)
        .map_err(|e| Error::io("replace", path, e.error))?;
    Ok(())
}

/// The credential helper `doc` names for `registry`: its `credHelpers` entry, or (with
/// `store_too`) the default `credsStore`.
fn helper_for(doc: &Value, registry: &str, store_too: bool) -> Option<String> {
    if store_too {
        return doc
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| helper_for(doc, registry, false));
    }
    let helpers = doc.get("credHelpers")?.as_object()?;
    helpers
        .iter()
        .find(|(k, _)| key_registry(k).0 == registry)
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Credentials from `auths`, most specific key first.
fn from_auths(
    doc: &Value,
    file: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut best: Option<(usize, &Value)> = None;
    for (key, value) in auths {
        let (reg, ns) = key_registry(key);
        if reg != registry {
            continue;
        }
        let specificity = match &ns {
            None => 0,
            Some(ns) if repository == ns || repository.starts_with(&format!("{ns}/")) => {
                ns.len() + 1
            }
            Some(_) => continue,
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, value));
        }
    }
    let Some((_, entry)) = best else {
        return Ok(None);
    };
    let bad = |problem| Error::InvalidDocument {
        what: file.display().to_string(),
        problem,
    };
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credentials::IdentityToken(token.to_owned())));
    }
    if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("an \"auth\" value is not base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| bad("an \"auth\" value is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or(bad("an \"auth\" value is not user:password"))?;
        return Ok(Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    if let (Some(username), Some(password)) = (field("username"), field("password")) {
        return Ok(Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    Ok(None)
}

/// Runs `docker-credential-NAME ACTION` with `input` on stdin; `None` when the helper is not
/// installed.
fn run_helper(helper: &str, action: &'static str, input: &[u8]) -> Result<Option<(bool, Vec<u8>)>> {
    let program = format!("docker-credential-{helper}");
    let child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("run", program, e)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status below.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("run", program.clone(), e))?;
    let mut text = out.stdout;
    if !out.status.success() {
        text.extend_from_slice(&out.stderr);
    }
    Ok(Some((out.status.success(), text)))
}

fn helper_error(helper: &str, registry: &str, action: &'static str, output: &[u8]) -> Error {
    Error::CredentialHelper {
        helper: format!("docker-credential-{helper}"),
        registry: registry.to_owned(),
        action,
        message: String::from_utf8_lossy(output).trim().to_owned(),
    }
}

fn helper_get(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    // Helpers trim their input; the newline serves those written as shell scripts (`read`).
    let input = format!("{}\n", server_key(registry));
    let Some((ok, out)) = run_helper(helper, "get", input.as_bytes())? else {
        return Ok(None);
    };
    if !ok {
        // Every helper says "credentials not found" its own way; docker treats any failure of
        // `get` as "no credentials", and so do we.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out).map_err(|source| Error::Json {
        what: format!("docker-credential-{helper} get"),
        source,
    })?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (username, secret) = (field("Username"), field("Secret"));
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if username == "<token>" {
        Credentials::IdentityToken(secret)
    } else {
        Credentials::Basic {
            username,
            password: secret,
        }
    }))
}

fn helper_store(helper: &str, registry: &str, creds: &Credentials) -> Result<()> {
    let (username, secret) = match creds {
        Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
        Credentials::IdentityToken(t) => ("<token>", t.as_str()),
    };
    let input = serde_json::json!({
        "ServerURL": server_key(registry),
        "Username": username,
        "Secret": secret,
    });
    match run_helper(helper, "store", input.to_string().as_bytes())? {
        Some((true, _)) => Ok(()),
        Some((false, out)) => Err(helper_error(helper, registry, "store", &out)),
        None => Err(helper_error(helper, registry, "store", b"not installed")),
    }
}

fn helper_erase(helper: &str, registry: &str) -> Result<bool> {
    Ok(matches!(
        run_helper(
            helper,
            "erase",
            format!("{}\n", server_key(registry)).as_bytes()
        )?,
        Some((true, _))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: Value) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn docker_style_keys_and_namespaces_most_specific_first() {
        let t = tempfile::tempdir().unwrap();
        let f = write(
            t.path(),
            "config.json",
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                "quay.io": {"auth": b64("quay:pw:with:colons")},
                "quay.io/org": {"username": "org", "password": "o"},
                "quay.io/org/special": {"identitytoken": "tok"},
                "http://localhost:5000": {"auth": b64("local:x")},
            }}),
        );
        let files = [f];
        let get = |r: &str, repo: &str| lookup_in(&files, r, repo).unwrap();
        assert_eq!(get("docker.io", "library/alpine"), Some(basic("hub", "pw")));
        assert_eq!(
            get("quay.io", "other/x"),
            Some(basic("quay", "pw:with:colons"))
        );
        assert_eq!(get("quay.io", "org/app"), Some(basic("org", "o")));
        assert_eq!(
            get("quay.io", "organization/app"),
            Some(basic("quay", "pw:with:colons"))
        );
        assert_eq!(
            get("quay.io", "org/special"),
            Some(Credentials::IdentityToken("tok".into()))
        );
        assert_eq!(get("localhost:5000", "x"), Some(basic("local", "x")));
        assert_eq!(get("ghcr.io", "x"), None);
    }

    #[test]
    fn the_first_file_that_knows_the_registry_wins() {
        let t = tempfile::tempdir().unwrap();
        let a = write(
            t.path(),
            "a.json",
            serde_json::json!({"auths": {"ghcr.io": {"auth": b64("a:1")}}}),
        );
        let b = write(
            t.path(),
            "b.json",
            serde_json::json!({"auths": {"ghcr.io": {"auth": b64("b:2")}, "quay.io": {"auth": b64("b:3")}}}),
        );
        let missing = t.path().join("missing.json");
        let files = [missing, a, b];
        assert_eq!(
            lookup_in(&files, "ghcr.io", "x").unwrap(),
            Some(basic("a", "1"))
        );
        assert_eq!(
            lookup_in(&files, "quay.io", "x").unwrap(),
            Some(basic("b", "3"))
        );
    }

    #[test]
    fn an_absent_helper_is_no_credentials_and_bad_files_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let f = write(
            t.path(),
            "c.json",
            serde_json::json!({"credsStore": "ocirender-test-absent", "credHelpers": {"ghcr.io": "ocirender-test-absent"}}),
        );
        assert_eq!(lookup_in(&[f], "ghcr.io", "x").unwrap(), None);
        let bad = t.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        assert!(matches!(
            lookup_in(&[bad], "ghcr.io", "x").unwrap_err(),
            Error::Json { .. }
        ));
        let bad_auth = write(
            t.path(),
            "d.json",
            serde_json::json!({"auths": {"ghcr.io": {"auth": "!!!"}}}),
        );
        assert!(matches!(
            lookup_in(&[bad_auth], "ghcr.io", "x").unwrap_err(),
            Error::InvalidDocument { .. }
        ));
    }

    #[test]
    fn store_then_lookup_then_erase_keeping_other_keys() {
        let t = tempfile::tempdir().unwrap();
        let f = write(
            t.path(),
            "config.json",
            serde_json::json!({"psFormat": "table", "auths": {
                "https://ghcr.io/v1/": {"auth": b64("old:old")},
                "ghcr.io/org": {"auth": b64("org:o")},
                "quay.io": {"auth": b64("q:q")},
            }}),
        );
        store_in(&f, "ghcr.io", &basic("new", "pw")).unwrap();
        store_in(&f, "docker.io", &basic("hub", "h")).unwrap();
        let files = [f.clone()];
        assert_eq!(
            lookup_in(&files, "ghcr.io", "x/y").unwrap(),
            Some(basic("new", "pw"))
        );
        assert_eq!(
            lookup_in(&files, "ghcr.io", "org/y").unwrap(),
            Some(basic("org", "o"))
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "table");
        assert!(
            doc["auths"]["https://index.docker.io/v1/"]["auth"].is_string(),
            "{doc}"
        );
        assert!(doc["auths"].get("https://ghcr.io/v1/").is_none(), "{doc}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );

        assert!(erase_in(&files, "ghcr.io").unwrap());
        assert_eq!(lookup_in(&files, "ghcr.io", "x/y").unwrap(), None);
        assert_eq!(
            lookup_in(&files, "quay.io", "x").unwrap(),
            Some(basic("q", "q"))
        );
        assert!(!erase_in(&files, "ghcr.io").unwrap());
    }

    #[test]
    fn debug_hides_secrets() {
        let s = format!("{:?}", basic("me", "hunter2"));
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!format!("{:?}", Credentials::IdentityToken("t0k".into())).contains("t0k"));
    }
}
