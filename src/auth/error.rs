//! Why a request's credentials were not accepted (the first rows of the status table: 401 and 400).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token anywhere it is looked for: 401 without an error code.
    #[error("no token")]
    Missing,
    /// The credentials are not well-formed (RFC 6750 `invalid_request`): 400.
    #[error("invalid request: {0}")]
    Malformed(&'static str),
    /// The token is not acceptable (RFC 6750 `invalid_token`): 401.
    #[error("invalid token: {0}")]
    Invalid(Cow<'static, str>),
    /// Signed with a `kid` the JWKS does not hold (yet): 401, after one
    /// rate-limited refresh of the JWKS.
    #[error("invalid token: unknown signing key")]
    UnknownKey,
}

impl AuthError {
    pub fn invalid(description: &'static str) -> AuthError {
        AuthError::Invalid(Cow::Borrowed(description))
    }
}
