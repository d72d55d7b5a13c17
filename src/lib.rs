//! revoke-proxy: a reverse-proxy sidecar that verifies bearer JWTs, enforces
//! revocations, and turns an application's logout routes into revocations.
//!
//! Request flow: [`server`] accepts → [`proxy`] matches a [`routes`] rule →
//! [`proxy::admit`] extracts and verifies the token ([`auth`]) and checks
//! [`revocation`] → [`proxy::forward`] sends it upstream → the route's action
//! is applied. [`config`] is read by everyone and imports none of them.
#![forbid(unsafe_code)]
// Network input never panics the proxy: no unwrap, expect, indexing or
// panic outside tests; a justified exception is annotated where it stands.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod claims;
pub mod cli;
pub mod config;
pub mod demo;
pub mod exit;
pub mod fetch;
pub mod intake;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod revocation;
pub mod routes;
pub mod server;
pub mod tls;
