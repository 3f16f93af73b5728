//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), as registries send them with a 401.
//!
//! ```text
//! Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"
//! └─scheme─┘ └──────────────────────────── auth-params ────────────────────────────────────┘
//! ```
//!
//! A header may hold several challenges (`Basic realm="x", Bearer realm="y"`): a new challenge
//! starts at a token that is not followed by `=`. Parameter names are case-insensitive; values
//! are tokens or quoted strings with `\` escapes. Pure functions, no I/O.

use std::collections::BTreeMap;

/// One challenge: the scheme (lower-cased) and its parameters (names lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// `basic` or `bearer` (or another scheme, which ocirender cannot answer).
    pub scheme: String,
    /// `realm`, `service`, `scope`, `error`…
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses every challenge in a header value; `None` when the value is not a challenge list.
pub(crate) fn parse(header: &str) -> Option<Vec<Challenge>> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_separators();
        if p.at_end() {
            break;
        }
        let word = p.token()?;
        p.skip_spaces();
        if p.peek() == Some(b'=') {
            // A parameter of the current challenge.
            p.i += 1;
            p.skip_spaces();
            let value = if p.peek() == Some(b'"') {
                p.quoted()?
            } else {
                p.token()?
            };
            out.last_mut()?
                .params
                .insert(word.to_ascii_lowercase(), value);
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// An RFC 9110 token (token68 padding `=` is not needed for the schemes read here).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let tchar = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c);
            if !tchar {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn quoted(&mut self) -> Option<String> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_params() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn several_challenges_tokens_and_escapes() {
        let c = parse(
            r#"Basic realm="a \"b\"", BEARER Realm=http://x/token , error=insufficient_scope"#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"a "b""#));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("http://x/token"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn garbage_is_not_a_challenge() {
        for bad in ["", "   ", "=x", r#"Bearer realm="unterminated"#, "realm=x"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
