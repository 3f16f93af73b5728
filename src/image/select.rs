//! Choosing one manifest among those an image offers: by reference, by platform, or the only
//! one; every failure lists the choices.
//!
//! ```text
//! candidates ──► ref given?  exact name (docker.io/library/ spelled or not) ─► else tag part
//!            │                 none: RefNotFound { available refs }
//!            ▼
//!            same manifest listed twice (l2 and latest) counts once
//!            ▼
//!            platform given?  os/arch match, variant when asked (absent = default, v8 for arm64)
//!            │                 several: the default variant; none: PlatformNotFound
//!            ▼
//!            one left → it;  several → the one matching the host (if the layout allows)
//!                            else AmbiguousManifest { "ref (os/arch[/variant])", … }
//! ```

use crate::digest::Digest;
use crate::error::{Error, Result};

use super::Platform;

/// One manifest on offer.
#[derive(Debug)]
pub(crate) struct Candidate<T> {
    /// Names that select it: OCI ref names, containerd image names, docker `RepoTags`.
    pub names: Vec<String>,
    /// Its platform, when known.
    pub platform: Option<Platform>,
    /// Its digest, when it is a blob (two candidates with one digest are one manifest).
    pub digest: Option<Digest>,
    /// What the layout reader needs to open it.
    pub item: T,
}

impl<T> Candidate<T> {
    /// `ref (os/arch[/variant])`, as error messages list a choice.
    pub fn describe(&self) -> String {
        let name = match (self.names.first(), &self.digest) {
            (Some(name), _) => name.clone(),
            (None, Some(digest)) => digest.short(),
            (None, None) => "(unnamed)".to_owned(),
        };
        match &self.platform {
            Some(p) => format!("{name} ({p})"),
            None => name,
        }
    }
}

/// Whether the host's platform may break a tie (an OCI index: yes; `docker save`: no, several
/// images there are different images, not variants of one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostTieBreak {
    Yes,
    No,
}

/// Picks one candidate; see the module documentation for the rules.
pub(crate) fn select<'a, T>(
    candidates: &'a [Candidate<T>],
    reference: Option<&str>,
    platform: Option<&Platform>,
    host: HostTieBreak,
) -> Result<&'a Candidate<T>> {
    let mut pool: Vec<&Candidate<T>> = match reference {
        Some(r) => by_reference(candidates, r)?,
        None => candidates.iter().collect(),
    };
    // One manifest listed under several names is one choice.
    let mut seen = Vec::new();
    pool.retain(|c| match &c.digest {
        Some(d) if seen.contains(&d) => false,
        Some(d) => {
            seen.push(d);
            true
        }
        None => true,
    });

    if let Some(wanted) = platform {
        if pool.len() == 1 && pool[0].platform.is_none() {
            // Nothing says which platform it is for; the request cannot be checked.
            return Ok(pool[0]);
        }
        let matching: Vec<_> = pool
            .iter()
            .copied()
            .filter(|c| c.platform.as_ref().is_some_and(|p| p.satisfies(wanted)))
            .collect();
        if matching.is_empty() {
            let mut available: Vec<String> = pool
                .iter()
                .map(|c| {
                    c.platform
                        .as_ref()
                        .map_or("unknown".to_owned(), Platform::to_string)
                })
                .collect();
            available.dedup();
            return Err(Error::PlatformNotFound {
                platform: wanted.to_string(),
                available,
            });
        }
        return one_of(matching, wanted.variant.is_none());
    }

    match pool.len() {
        0 => Err(Error::AmbiguousManifest {
            choices: Vec::new(),
        }),
        1 => Ok(pool[0]),
        _ => {
            if host == HostTieBreak::Yes {
                let host = Platform::host();
                let matching: Vec<_> = pool
                    .iter()
                    .copied()
                    .filter(|c| c.platform.as_ref().is_some_and(|p| p.satisfies(&host)))
                    .collect();
                if !matching.is_empty() {
                    if let Ok(c) = one_of(matching, true) {
                        return Ok(c);
                    }
                }
            }
            Err(ambiguous(&pool))
        }
    }
}

/// The single candidate of `matching`, or the single one with the default variant.
fn one_of<T>(matching: Vec<&Candidate<T>>, prefer_default: bool) -> Result<&Candidate<T>> {
    if matching.len() == 1 {
        return Ok(matching[0]);
    }
    if prefer_default {
        let canonical: Vec<_> = matching
            .iter()
            .copied()
            .filter(|c| c.platform.as_ref().is_some_and(Platform::is_canonical))
            .collect();
        if canonical.len() == 1 {
            return Ok(canonical[0]);
        }
    }
    Err(ambiguous(&matching))
}

fn ambiguous<T>(pool: &[&Candidate<T>]) -> Error {
    Error::AmbiguousManifest {
        choices: pool.iter().map(|c| c.describe()).collect(),
    }
}

fn by_reference<'a, T>(candidates: &'a [Candidate<T>], r: &str) -> Result<Vec<&'a Candidate<T>>> {
    let exact: Vec<_> = candidates
        .iter()
        .filter(|c| {
            c.names
                .iter()
                .any(|n| n == r || short_name(n) == short_name(r))
        })
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let by_tag: Vec<_> = candidates
        .iter()
        .filter(|c| c.names.iter().any(|n| tag_of(n) == Some(r)))
        .collect();
    if !by_tag.is_empty() {
        return Ok(by_tag);
    }
    let mut available: Vec<String> = Vec::new();
    for name in candidates.iter().flat_map(|c| &c.names) {
        if !available.contains(name) {
            available.push(name.clone());
        }
    }
    Err(Error::RefNotFound {
        reference: r.to_owned(),
        available,
    })
}

/// A Docker Hub name without its implied registry: `docker.io/library/debian:12` → `debian:12`.
fn short_name(name: &str) -> &str {
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return rest;
        }
    }
    name
}

/// The tag of `repo:tag` (not of a bare tag, a port or a digest reference).
fn tag_of(name: &str) -> Option<&str> {
    if name.contains('@') {
        return None;
    }
    let colon = name.rfind(':')?;
    match name.rfind('/') {
        Some(slash) if slash > colon => None,
        _ => Some(&name[colon + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(names: &[&str], platform: Option<&str>, digest: char) -> Candidate<()> {
        Candidate {
            names: names.iter().map(|s| s.to_string()).collect(),
            platform: platform.map(|p| p.parse().unwrap()),
            digest: Some(
                Digest::parse(&format!("sha256:{}", digest.to_string().repeat(64))).unwrap(),
            ),
            item: (),
        }
    }

    fn pick<'a>(
        c: &'a [Candidate<()>],
        r: Option<&str>,
        p: Option<&str>,
    ) -> Result<&'a Candidate<()>> {
        let p = p.map(|p| p.parse::<Platform>().unwrap());
        select(c, r, p.as_ref(), HostTieBreak::Yes)
    }

    #[test]
    fn references_match_exactly_then_by_tag() {
        let c = [
            cand(&["v1", "docker.io/library/app:v1"], None, 'a'),
            cand(&["example.com/app:v2"], None, 'b'),
        ];
        assert_eq!(pick(&c, Some("v1"), None).unwrap().digest, c[0].digest);
        assert_eq!(pick(&c, Some("app:v1"), None).unwrap().digest, c[0].digest);
        assert_eq!(pick(&c, Some("v2"), None).unwrap().digest, c[1].digest);
        let err = pick(&c, Some("v3"), None).unwrap_err();
        let Error::RefNotFound { available, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(available.len(), 3);
        assert!(err.to_string().contains("example.com/app:v2"), "{err}");
    }

    #[test]
    fn platforms_with_default_variants() {
        let c = [
            cand(&["x"], Some("linux/amd64"), 'a'),
            cand(&["x"], Some("linux/arm64/v8"), 'b'),
            cand(&["x"], Some("linux/arm/v6"), 'c'),
            cand(&["x"], Some("linux/arm/v7"), 'd'),
        ];
        assert_eq!(
            pick(&c, None, Some("linux/arm64")).unwrap().digest,
            c[1].digest
        );
        assert_eq!(
            pick(&c, None, Some("linux/arm")).unwrap().digest,
            c[3].digest
        );
        assert_eq!(
            pick(&c, None, Some("linux/arm/v6")).unwrap().digest,
            c[2].digest
        );
        let err = pick(&c, None, Some("linux/s390x")).unwrap_err();
        assert!(matches!(err, Error::PlatformNotFound { .. }), "{err}");
        assert!(err.to_string().contains("linux/arm/v6"), "{err}");
    }

    #[test]
    fn several_without_a_choice_are_ambiguous_unless_the_host_decides() {
        let c = [
            cand(&["a"], Some("linux/amd64"), 'a'),
            cand(&["b"], Some("linux/arm64"), 'b'),
        ];
        let host = Platform::host();
        match pick(&c, None, None) {
            Ok(chosen) => assert!(chosen.platform.as_ref().unwrap().satisfies(&host)),
            Err(err) => {
                assert!(matches!(err, Error::AmbiguousManifest { .. }));
                assert!(err.to_string().contains("a (linux/amd64)"), "{err}");
            }
        }
        let err = select(&c, None, None, HostTieBreak::No).unwrap_err();
        let Error::AmbiguousManifest { choices } = err else {
            panic!()
        };
        assert_eq!(choices, ["a (linux/amd64)", "b (linux/arm64)"]);
    }

    #[test]
    fn one_manifest_under_two_names_is_one_choice() {
        let c = [cand(&["l2"], None, 'a'), cand(&["latest"], None, 'a')];
        assert!(pick(&c, None, None).is_ok());
    }

    #[test]
    fn tags_of_names() {
        assert_eq!(tag_of("example.com:5000/app:v1"), Some("v1"));
        assert_eq!(tag_of("example.com:5000/app"), None);
        assert_eq!(tag_of("latest"), None);
        assert_eq!(tag_of("app@sha256:abc"), None);
    }
}
