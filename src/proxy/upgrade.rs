//! HTTP/1.1 upgrades (WebSocket and the like): the handshake is admitted like
//! any request, then both sides are spliced together. Only the protocols a
//! route lists in `upgrades` (default: `websocket` behind a token, nothing on
//! a public route) are tunnelled; any other `Upgrade` (h2c above all, which
//! is hop-by-hop, RFC 9113 §3.1) is dropped and the request goes on as a
//! plain one. An upgraded connection lives only as long as its token: the
//! same check as admission runs every [`RECHECK_EVERY`] — revoked (from any
//! replica), past `exp` + `jwt.leeway`, or the store unusable under
//! `on_store_failure: deny` — and closes it.

use crate::auth::status_list::StatusLists;
use crate::auth::Verified;
use crate::revocation::{Revocations, Verdict};
use crate::routes::Rule;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;

/// How often an upgraded connection re-checks its token (250 ms), so a
/// revocation closes it well within a second.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// The protocol to tunnel: asked for (HTTP/1.1, `Connection: upgrade` and
/// one `Upgrade` protocol) and listed in the route's `upgrades`.
pub fn allowed(rule: &Rule, headers: &HeaderMap, version: http::Version) -> Option<HeaderValue> {
    if version != http::Version::HTTP_11 {
        return None;
    }
    let protocol = requested(headers)?;
    let text = protocol.to_str().ok()?;
    let name = text.split('/').next().unwrap_or("").trim();
    let single = !text.contains(',');
    (single && rule.upgrades.iter().any(|u| u.eq_ignore_ascii_case(name))).then_some(protocol)
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !wants {
        return None;
    }
    headers.get(UPGRADE).cloned()
}

/// Puts back the two hop-by-hop fields an upgrade needs on the next hop.
pub fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(UPGRADE, protocol);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Splices the client and upstream connections once both have switched
/// protocols, until either side closes or the token stops being valid.
pub fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    revocations: Arc<Revocations>,
    lists: Option<Arc<StatusLists>>,
    verified: Option<Arc<Verified>>,
    leeway: i64,
    allow_on_store_failure: bool,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                tracing::debug!(
                    client_ok = c.is_ok(),
                    upstream_ok = u.is_ok(),
                    "Upgrade did not complete"
                );
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        let subject = verified
            .as_ref()
            .map_or_else(|| "-".to_string(), |v| v.subject.as_text().to_string());
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                tracing::debug!(subject, closed_cleanly = r.is_ok(), "Upgraded connection ended");
            }
            why = watch(revocations, lists, verified, leeway, allow_on_store_failure) => {
                tracing::info!(subject, reason = why, "Closing upgraded connection: token no longer valid");
            }
        }
    });
}

/// Resolves when the token stops being admissible; never for public routes.
async fn watch(
    revocations: Arc<Revocations>,
    lists: Option<Arc<StatusLists>>,
    verified: Option<Arc<Verified>>,
    leeway: i64,
    allow_on_store_failure: bool,
) -> &'static str {
    let Some(v) = verified else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(RECHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The rule of admission (`Verifier::check_time`): expired at exp + leeway.
        if v.exp
            .is_some_and(|exp| revocations.clock().now() >= exp.saturating_add(leeway))
        {
            return "expired";
        }
        match revocations
            .verdict_with_compat(v.token_ref(), &v.keys, v.iat, &v.compat)
            .await
        {
            Verdict::Revoked(reason) => return reason.label(),
            Verdict::Unavailable if !allow_on_store_failure => return "store_unavailable",
            Verdict::Clear | Verdict::Unavailable => {}
        }
        if let Some(lists) = &lists {
            let now = revocations.clock().now();
            if let Err(e) =
                super::admit::status_list_verdict(lists, &v, now, allow_on_store_failure).await
            {
                return e.outcome().label();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_upgrade_with_a_protocol_counts() {
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(requested(&h), None, "no Connection: upgrade");
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(requested(&h), Some(HeaderValue::from_static("websocket")));
        h.remove(UPGRADE);
        assert_eq!(requested(&h), None, "no protocol");
    }
}
