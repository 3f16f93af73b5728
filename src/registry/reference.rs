//! Image references as docker and skopeo users write them: `alpine`, `alpine:3.20`,
//! `ghcr.io/o/n@sha256:…`, `localhost:5000/x:y`. Pure functions, no I/O.
//!
//! ```text
//! "alpine:3.20" ──► split domain? ──► docker.io + library/alpine ──► tag 3.20
//!                   (first component has '.' or ':', or is "localhost", or has upper case)
//! ```
//!
//! The rules are those of docker's `reference.ParseNormalizedNamed`: a first component that
//! looks like a host (a `.`, a `:` port, `localhost`) is the registry, otherwise the registry is
//! Docker Hub (`docker.io`), where a one-component name lives under `library/`. `index.docker.io`
//! is the same registry as `docker.io`. A name without tag or digest means `:latest`; with both,
//! the digest decides what is fetched and the tag is only a name.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The longest repository name the distribution spec allows.
const MAX_NAME: usize = 255;

/// The longest tag the distribution spec allows.
const MAX_TAG: usize = 128;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry as named (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub registry: String,
    /// The repository inside it (`library/alpine`, `o/n`).
    pub repository: String,
    /// The tag, when one was written (or implied: `latest` when neither tag nor digest was).
    pub tag: Option<String>,
    /// The manifest digest, when one was written.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference and normalizes it (Docker Hub's registry and `library/`, `latest`).
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |problem| Error::InvalidReference {
            reference: s.to_owned(),
            problem,
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(Digest::parse(d).map_err(|_| bad("bad digest"))?)),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry's port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        let (registry, repository) = split_registry(name);
        check_registry(registry).map_err(bad)?;
        let registry = match registry {
            "index.docker.io" => DOCKER_HUB.to_owned(),
            r => r.to_owned(),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        check_repository(&repository).map_err(bad)?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What the manifest endpoint is asked for: the digest if there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The host (and port) that serves this registry's API: Docker Hub's is
    /// `registry-1.docker.io`, every other registry serves under its own name.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The name without tag or digest, as users write it (`docker.io/library/alpine`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at another manifest digest (a platform's manifest in an index).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/alpine:3.20`, `ghcr.io/o/n@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// The host that serves `registry`'s API (Docker Hub's differs from its name).
pub fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API,
        r => r,
    }
}

/// Normalizes a registry name as users type it to `login`/`logout` (`https://ghcr.io/`,
/// `index.docker.io`, `docker.io/library`) to the name references use.
pub fn normalize_registry(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "" => DOCKER_HUB.to_owned(),
        h => h.to_owned(),
    }
}

/// Whether `host` (with an optional port) is this machine: `localhost`, `127.0.0.0/8`, `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if name == "localhost" {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Splits `name` into registry and repository the way docker does.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

/// A registry: a host name or IPv4 address, or an IPv6 address in brackets, with an optional
/// `:port`.
fn check_registry(registry: &str) -> std::result::Result<(), &'static str> {
    let (host, port) = match registry.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("unclosed '[' in the registry")?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("bad IPv6 address in the registry");
            }
            match after {
                "" => ("", None),
                p => (
                    "",
                    Some(
                        p.strip_prefix(':')
                            .ok_or("junk after the registry's IPv6 address")?,
                    ),
                ),
            }
        }
        None => match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        },
    };
    if !registry.starts_with('[') {
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        };
        if !host.split('.').all(label_ok) {
            return Err("bad registry host name");
        }
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err("bad registry port");
        }
    }
    Ok(())
}

/// A repository: `/`-separated components of lower-case letters and digits joined by `.`,
/// `_`, `__` or runs of `-`.
fn check_repository(repo: &str) -> std::result::Result<(), &'static str> {
    if repo.len() > MAX_NAME {
        return Err("repository name longer than 255 characters");
    }
    for component in repo.split('/') {
        let b = component.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() {
            return Err("empty path component");
        }
        if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err("a name component must start and end with a lower-case letter or digit");
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: ".", "_", "__" or one or more "-".
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err("name components hold only lower-case letters, digits and . _ __ -");
            }
        }
    }
    Ok(())
}

/// A tag: a word character, then up to 127 word characters, `.` or `-`.
fn check_tag(tag: &str) -> std::result::Result<(), &'static str> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = tag.as_bytes();
    if b.is_empty() {
        return Err("empty tag");
    }
    if b.len() > MAX_TAG {
        return Err("tag longer than 128 characters");
    }
    if !word(b[0]) || !b.iter().all(|&c| word(c) || c == b'.' || c == b'-') {
        return Err("a tag holds letters, digits, _ . - and starts with a letter, digit or _");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (
            r.registry,
            r.repository,
            r.tag,
            r.digest.map(|d| d.to_string()),
        )
    }

    fn p(
        reg: &str,
        repo: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> (String, String, Option<String>, Option<String>) {
        (
            reg.into(),
            repo.into(),
            tag.map(Into::into),
            digest.map(Into::into),
        )
    }

    #[test]
    fn docker_hub_names_are_normalized() {
        assert_eq!(
            parts("alpine"),
            p("docker.io", "library/alpine", Some("latest"), None)
        );
        assert_eq!(
            parts("alpine:3.20"),
            p("docker.io", "library/alpine", Some("3.20"), None)
        );
        assert_eq!(
            parts("user/app"),
            p("docker.io", "user/app", Some("latest"), None)
        );
        assert_eq!(
            parts("docker.io/alpine"),
            p("docker.io", "library/alpine", Some("latest"), None)
        );
        assert_eq!(
            parts("index.docker.io/library/alpine:edge"),
            p("docker.io", "library/alpine", Some("edge"), None)
        );
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn registries_are_recognized_by_dot_port_or_localhost() {
        assert_eq!(
            parts(&format!("ghcr.io/o/n@{D}")),
            p("ghcr.io", "o/n", None, Some(D))
        );
        assert_eq!(
            parts("localhost:5000/x:y"),
            p("localhost:5000", "x", Some("y"), None)
        );
        assert_eq!(
            parts("localhost/x"),
            p("localhost", "x", Some("latest"), None)
        );
        assert_eq!(
            parts("127.0.0.1:5000/a/b/c:v1.2-rc_3"),
            p("127.0.0.1:5000", "a/b/c", Some("v1.2-rc_3"), None)
        );
        // A tag and a digest: the digest decides, the tag stays as a name.
        assert_eq!(
            parts(&format!("quay.io/x/y:1@{D}")),
            p("quay.io", "x/y", Some("1"), Some(D))
        );
        let r = Reference::parse(&format!("quay.io/x/y:1@{D}")).unwrap();
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.api_host(), "quay.io");
        // A first component without '.', ':' or "localhost" is a Docker Hub user.
        assert_eq!(
            parts("myhost/app"),
            p("docker.io", "myhost/app", Some("latest"), None)
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abc",
            "alpine@md5:d41d8cd98f00b204e9800998ecf8427e",
            "a//b",
            "/alpine",
            "alpine/",
            "a..b",
            "a_-b",
            "ghcr.io/O/n",
            ":5000/x",
            "alpine:a:b",
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidReference { .. }),
                "{bad:?}: {err}"
            );
        }
        let long_tag = format!("alpine:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        assert!(Reference::parse(&format!("alpine:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn login_names_and_loopback_hosts() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("ghcr.io"), "ghcr.io");
        assert_eq!(
            normalize_registry("http://localhost:5000/"),
            "localhost:5000"
        );
        for host in [
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[2001:db8::1]",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
