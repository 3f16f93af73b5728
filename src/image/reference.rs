//! `DIR:REF` parsing and platform strings: pure functions, except for the existence checks that
//! decide where a path ends.
//!
//! Both a path and a ref may contain `:` (`/tmp/a:b/img`, `example.com/app:v1`), so the split
//! cannot be syntactic. The rule: the whole string is a path if it exists; otherwise the
//! longest prefix before a `:` that exists is the path and the rest is the ref. A string of
//! which no prefix exists is left whole, so that opening it reports the path the user typed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// An image path with an optional manifest reference, as written `DIR` or `DIR:REF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLocation {
    /// The directory or tar file.
    pub path: PathBuf,
    /// The reference after the path's `:`, when the path before it exists and the whole string
    /// does not.
    pub reference: Option<String>,
}

impl ImageLocation {
    /// Parses `DIR` or `DIR:REF`, checking the file system to find where the path ends.
    pub fn parse(s: &str) -> ImageLocation {
        ImageLocation::parse_with(s, |p| p.exists())
    }

    /// [`ImageLocation::parse`] with the existence check supplied by the caller.
    fn parse_with(s: &str, exists: impl Fn(&Path) -> bool) -> ImageLocation {
        let whole = ImageLocation {
            path: PathBuf::from(s),
            reference: None,
        };
        if exists(Path::new(s)) {
            return whole;
        }
        // The last ':' first: the longest prefix that exists wins.
        for (i, _) in s.rmatch_indices(':') {
            let (path, reference) = (&s[..i], &s[i + 1..]);
            if !path.is_empty() && exists(Path::new(path)) {
                return ImageLocation {
                    path: PathBuf::from(path),
                    reference: (!reference.is_empty()).then(|| reference.to_owned()),
                };
            }
        }
        whole
    }
}

/// An `os/architecture[/variant]` platform.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture, e.g. `amd64`.
    pub architecture: String,
    /// Variant, e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on, in OCI's spelling (`linux/amd64`, `linux/arm64`).
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            os => os,
        };
        let little = cfg!(target_endian = "little");
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if little => "ppc64le",
            "powerpc64" => "ppc64",
            "mips64" if little => "mips64le",
            "loongarch64" => "loong64",
            arch => arch,
        };
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// The variant an architecture has when none is written (`arm64` → `v8`, `arm` → `v7`).
    pub fn default_variant(architecture: &str) -> Option<&'static str> {
        match architecture {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            "amd64" => Some("v1"),
            _ => None,
        }
    }

    /// This platform's variant, or its architecture's default.
    fn effective_variant(&self) -> Option<&str> {
        self.variant
            .as_deref()
            .or_else(|| Platform::default_variant(&self.architecture))
    }

    /// Whether an image for `self` satisfies a request for `wanted`: same OS and architecture,
    /// and the same variant when `wanted` names one (an absent variant counts as the
    /// architecture's default).
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.effective_variant() == wanted.effective_variant())
    }

    /// Whether this platform's variant is its architecture's default (or it has none).
    pub fn is_canonical(&self) -> bool {
        self.variant.is_none()
            || self.effective_variant() == Platform::default_variant(&self.architecture)
    }
}

impl FromStr for Platform {
    type Err = crate::Error;

    /// Parses `os/arch[/variant]`, accepting common architecture aliases (`x86_64`,
    /// `aarch64`, `i386`).
    fn from_str(s: &str) -> Result<Platform> {
        let bad = |reason| Error::InvalidOption {
            name: "platform",
            value: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64"));
        }
        let os = parts[0].to_ascii_lowercase();
        let mut variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        let architecture = match parts[1].to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            "i386" | "i686" => "386".to_owned(),
            arch => arch.to_owned(),
        };
        if let Some(v) = &variant {
            if v.bytes().all(|b| b.is_ascii_digit())
                && matches!(architecture.as_str(), "arm" | "arm64")
            {
                variant = Some(format!("v{v}"));
            }
        }
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, existing: &[&str]) -> (String, Option<String>) {
        let loc = ImageLocation::parse_with(s, |p| existing.iter().any(|e| Path::new(e) == p));
        (loc.path.display().to_string(), loc.reference)
    }

    #[test]
    fn location_splits_where_the_path_exists() {
        assert_eq!(parse("img", &["img"]), ("img".into(), None));
        assert_eq!(
            parse("img:latest", &["img"]),
            ("img".into(), Some("latest".into()))
        );
        // A path containing ':' that exists as a whole is not split.
        assert_eq!(parse("a:b", &["a", "a:b"]), ("a:b".into(), None));
        // Refs may contain ':'; the longest existing prefix is the path.
        assert_eq!(
            parse("/t/a:b/img:example.com/app:v1", &["/t/a", "/t/a:b/img"]),
            ("/t/a:b/img".into(), Some("example.com/app:v1".into()))
        );
        assert_eq!(
            parse("img:example.com:5000/app:v1", &["img"]),
            ("img".into(), Some("example.com:5000/app:v1".into()))
        );
        // Nothing exists: the string stays whole so the error names it.
        assert_eq!(parse("nope:x", &[]), ("nope:x".into(), None));
        // An empty ref is no ref.
        assert_eq!(parse("img:", &["img"]), ("img".into(), None));
    }

    #[test]
    fn platform_strings() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "linux/x86_64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        let p: Platform = "linux/arm/7".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            let err = bad.parse::<Platform>().unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidOption {
                        name: "platform",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn variants_match_their_defaults() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(p("linux/arm64").satisfies(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").satisfies(&p("linux/arm64")));
        assert!(!p("linux/arm/v6").satisfies(&p("linux/arm/v7")));
        assert!(p("linux/arm/v6").satisfies(&p("linux/arm")));
        assert!(!p("linux/amd64").satisfies(&p("linux/arm64")));
        assert!(p("linux/arm/v7").is_canonical());
        assert!(!p("linux/arm/v6").is_canonical());
    }

    #[test]
    fn host_is_in_oci_spelling() {
        let host = Platform::host();
        assert!(!host.architecture.is_empty());
        assert_ne!(host.architecture, "x86_64");
        assert_ne!(host.architecture, "aarch64");
    }
}
