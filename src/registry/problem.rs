//! What can be wrong with a registry's authentication challenge or token answer: the
//! `problem` of [`Error::AuthProtocol`](crate::Error::AuthProtocol).

/// Why a registry's `WWW-Authenticate` challenge or its token service's answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthProblem {
    /// A 401 answer that does not say how to authenticate.
    #[error("a 401 answer without a WWW-Authenticate challenge")]
    NoChallenge,

    /// A `WWW-Authenticate` header that does not parse.
    #[error("unreadable challenge {header:?}")]
    UnreadableChallenge {
        /// The header as sent.
        header: String,
    },

    /// A challenge with neither the Bearer nor the Basic scheme.
    #[error("unsupported authentication scheme in {header:?}")]
    UnsupportedScheme {
        /// The header as sent.
        header: String,
    },

    /// A Bearer challenge that does not say where to get a token.
    #[error("a Bearer challenge without a realm")]
    NoRealm,

    /// A token realm that is not a URL.
    #[error("the token realm {realm:?} is not a URL")]
    RealmNotUrl {
        /// The realm as sent.
        realm: String,
    },

    /// A plain-HTTP token realm for an HTTPS registry: credentials would travel in clear.
    #[error("the token realm {realm:?} is not HTTPS (credentials would travel in clear)")]
    RealmNotHttps {
        /// The realm as sent.
        realm: String,
    },

    /// A token answer larger than ocirender reads.
    #[error("the token answer is too large")]
    TokenAnswerTooLarge,

    /// A token answer without `token` or `access_token`.
    #[error("the token answer holds no token")]
    NoToken,

    /// A token that cannot go into an HTTP header.
    #[error("the token holds characters a header cannot")]
    TokenNotHeaderSafe,
}
