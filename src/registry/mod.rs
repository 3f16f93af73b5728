//! Pull images straight from a registry (OCI distribution v2), converting while they download.
//!
//! ```text
//! "alpine:3.20" ──► Reference (docker.io/library/alpine:3.20)
//!      │
//!      ▼ manifest::resolve: GET manifests/3.20 ──► index? ──► platform ──► image manifest
//!      │   (client: 401 ──► WWW-Authenticate ──► Basic, or Bearer token from the realm, with
//!      │    credentials from the auth files or a credential helper)
//!      ▼
//! pull:  layers newest first ──► download (N at once, Range-resumed, digest checked)
//!                                   └─► growing temp files ──► StreamingPacker ──► Sink
//! fetch: config + layers ──► DIR/blobs ──► manifest ──► index.json (an OCI image layout)
//! ```
//!
//! Why in-process: a static binary in a minimal container has no skopeo or docker; and only
//! in-process can the conversion start on the first bytes of the newest layer while the others
//! are still downloading (see [`pull`]'s module notes in `pull.rs`). HTTP is reqwest over
//! rustls (ring), with the Mozilla roots built in and the system's roots added when present, so
//! the same binary works with or without `/etc/ssl`.
//!
//! ```no_run
//! use ocirender::registry::{pull, Reference, RegistryOptions};
//! use ocirender::{ConvertOptions, ImageSpec};
//!
//! # async fn example() -> ocirender::Result<()> {
//! let reference = Reference::parse("alpine:3.20")?; // docker.io/library/alpine:3.20
//! let spec = ImageSpec::Squashfs { path: "alpine.sqfs".into() };
//! let summary = pull(&reference, &spec, &ConvertOptions::default(), &RegistryOptions::default()).await?;
//! println!("{} entries", summary.entries);
//! # Ok(())
//! # }
//! ```
//!
//! Everything here is behind the `registry` cargo feature; library users who bring their own
//! downloads use [`StreamingPacker`](crate::StreamingPacker) directly and do not build it.

mod challenge;
mod client;
pub mod credentials;
mod download;
mod layout;
mod manifest;
mod options;
mod problem;
mod pull;
pub mod reference;

pub use credentials::Credentials;
pub use layout::{fetch, Fetched};
pub use options::{Concurrency, Mirror, RegistryOptions};
pub use problem::AuthProblem;
pub use pull::{pull, pull_until};
pub use reference::Reference;

use crate::error::Result;

/// Checks `credentials` against `registry` (a name as `login` takes it: `ghcr.io`,
/// `localhost:5000`, `docker.io`) and stores them where docker and podman look (see
/// [`credentials`]); returns where they went.
pub async fn login(
    registry: &str,
    credentials: &Credentials,
    options: &RegistryOptions,
) -> Result<String> {
    let registry = reference::normalize_registry(registry);
    let options = RegistryOptions {
        credentials: Some(credentials.clone()),
        ..options.clone()
    };
    let client = client::Client::new(&registry, reference::api_host(&registry), "", &options)?;
    client.check_login().await?;
    credentials::store(&registry, credentials)
}

/// Removes the stored credentials of `registry` from every auth file (and credential helper);
/// returns whether there were any.
pub fn logout(registry: &str) -> Result<bool> {
    credentials::erase(&reference::normalize_registry(registry))
}
