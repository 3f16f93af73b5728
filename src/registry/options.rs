//! What a pull or fetch may be told: where to connect, how hard to try, what to present.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::image::Platform;

use super::credentials::Credentials;
use super::reference::{normalize_registry, DOCKER_HUB};

/// How a pull or fetch talks to registries.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Pick this platform from a multi-platform index. By default, the host's.
    pub platform: Option<Platform>,
    /// Speak plain HTTP instead of HTTPS (for a test registry on this machine). By default,
    /// HTTPS only.
    pub insecure: bool,
    /// Registries to try before the one a reference names. By default, none.
    pub mirrors: Vec<Mirror>,
    /// PEM files of certificate authorities to trust besides the built-in (Mozilla) roots and
    /// the system's. By default, none.
    pub ca_certificates: Vec<PathBuf>,
    /// Credentials to present instead of those in the auth files. By default, none: the auth
    /// files are read (see [`credentials`](super::credentials)).
    pub credentials: Option<Credentials>,
    /// Blobs downloaded at once. By default, 3.
    pub concurrency: Concurrency,
    /// Attempts per request before a transient failure (a dropped connection, a timeout, a 5xx
    /// or 429 answer) becomes final. By default, 5.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each further one, up to 10 s. By
    /// default, 500 ms.
    pub retry_delay: Duration,
    /// A connection that delivers nothing for this long counts as dropped. By default, 60 s.
    pub read_timeout: Duration,
    /// Where `pull` keeps the blobs while it converts them (in a hidden directory it removes).
    /// By default, the output's directory: a minimal container may have no `/tmp`.
    pub temp_dir: Option<PathBuf>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            platform: None,
            insecure: false,
            mirrors: Vec::new(),
            ca_certificates: Vec::new(),
            credentials: None,
            concurrency: Concurrency::default(),
            attempts: 5,
            retry_delay: Duration::from_millis(500),
            read_timeout: Duration::from_secs(60),
            temp_dir: None,
        }
    }
}

/// The number of blobs downloaded at once, 1 to 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concurrency(usize);

impl Concurrency {
    /// The largest accepted value.
    pub const MAX: usize = 64;

    /// Validates `n`.
    pub fn new(n: usize) -> Result<Concurrency> {
        if n == 0 || n > Self::MAX {
            return Err(Error::InvalidOption {
                name: "concurrency",
                value: n.to_string(),
                reason: "must be between 1 and 64",
            });
        }
        Ok(Concurrency(n))
    }

    /// The value.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency(3)
    }
}

impl FromStr for Concurrency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Concurrency> {
        let n = s.trim().parse().map_err(|_| Error::InvalidOption {
            name: "concurrency",
            value: s.to_owned(),
            reason: "not a number",
        })?;
        Concurrency::new(n)
    }
}

/// A registry that serves the same repositories as another one, tried first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// The registry mirrored, as references name it (`docker.io`).
    pub of: String,
    /// The mirror's host (and port).
    pub host: String,
}

impl FromStr for Mirror {
    type Err = Error;

    /// `HOST` mirrors Docker Hub (as dockerd's `registry-mirrors`); `REGISTRY=HOST` mirrors
    /// REGISTRY.
    fn from_str(s: &str) -> Result<Mirror> {
        let (of, host) = match s.split_once('=') {
            Some((of, host)) => (of.trim(), host.trim()),
            None => (DOCKER_HUB, s.trim()),
        };
        if host.is_empty() || of.is_empty() || s.contains(char::is_whitespace) {
            return Err(Error::InvalidOption {
                name: "mirror",
                value: s.to_owned(),
                reason: "expected HOST[:PORT] or REGISTRY=HOST[:PORT]",
            });
        }
        Ok(Mirror {
            of: normalize_registry(of),
            host: normalize_registry(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_default_to_docker_hub() {
        let m: Mirror = "mirror.gcr.io".parse().unwrap();
        assert_eq!(
            (m.of.as_str(), m.host.as_str()),
            ("docker.io", "mirror.gcr.io")
        );
        let m: Mirror = "ghcr.io=http://localhost:5000/".parse().unwrap();
        assert_eq!(
            (m.of.as_str(), m.host.as_str()),
            ("ghcr.io", "localhost:5000")
        );
        assert!("=x".parse::<Mirror>().is_err());
    }

    #[test]
    fn concurrency_bounds() {
        assert_eq!("3".parse::<Concurrency>().unwrap().get(), 3);
        for bad in ["0", "65", "x", "-1"] {
            assert!(bad.parse::<Concurrency>().is_err(), "{bad}");
        }
    }
}
