//! Why an exchange with the upstream failed on the fast path. Logged; the
//! client gets 502 (or 504 on the response timeout, decided by the caller).

use super::head::HeadError;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    #[error("connect to {0}: {1}")]
    Connect(String, io::Error),
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream closed the connection during the request body")]
    ClosedDuringBody,
    #[error("request body: {0}")]
    ClientBody(io::Error),
    #[error("response head too large")]
    HeadTooLarge,
    #[error(transparent)]
    Head(#[from] HeadError),
}
