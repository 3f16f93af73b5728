//! `DIR:REF` parsing and platform strings: pure functions, no I/O.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::Result;

/// An image path with an optional manifest reference, as written `DIR` or `DIR:REF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLocation {
    /// The directory or tar file.
    pub path: PathBuf,
    /// The reference after the last `:`, when the path before it exists and the whole string
    /// does not.
    pub reference: Option<String>,
}

impl ImageLocation {
    /// Parses `DIR` or `DIR:REF`.
    pub fn parse(s: &str) -> ImageLocation {
        todo!("helper A")
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
        todo!("helper A")
    }
}

impl FromStr for Platform {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Platform> {
        todo!("helper A")
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
