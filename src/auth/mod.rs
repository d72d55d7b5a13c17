//! Authentication: find the bearer token and verify it. Plain values in,
//! decisions out; nothing here knows about sockets, the upstream or stores.
//!
//! Owns: token extraction, JOSE header rules, key sets, verification, its
//! cache, JWKS parsing (fetching is a [`jwks::Fetch`] the caller supplies), ROCA check,
//! token status lists (fetched the same way).
//! May import: config, claims, metrics.

pub mod cache;
mod error;
pub mod extract;
pub mod jose;
pub mod jwks;
pub mod keyset;
pub mod roca;
pub mod status_list;
pub mod verify;

pub use error::AuthError;
pub use extract::extract;
pub use verify::{Verified, Verifier};
