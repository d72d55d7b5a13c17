//! The one header policy. Both request paths (the HTTP/1.1 fast path and
//! hyper) walk the fields of a message and ask [`Policy`] what becomes of
//! each, then let it add the fields the proxy sets; neither path has rules
//! of its own. Config validation and the reserved names of
//! `forward.claims_to_headers` come from here too.
//!
//! Names are compared case-insensitively and with `_` read as `-`, because
//! CGI, WSGI, Rack and PHP map both spellings to the same variable: a client
//! must not smuggle `X_Auth_Subject` past a rule about `X-Auth-Subject`.

use crate::auth::extract::{same_name, visible_ascii, Fields};
use crate::config::{Cidr, ForwardSettings, HostMode};
use http::{HeaderName, HeaderValue};
use std::borrow::Cow;
use std::net::IpAddr;

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and
/// `Proxy-Connection`): meaningful for one connection only, never forwarded.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Fields that frameworks route on (IIS URL Rewrite, Symfony, Laravel,
/// Express method-override…): a public path could reach a protected route
/// or method through them. Never forwarded.
pub const ROUTING_OVERRIDES: [&str; 7] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Fields describing the hops before this one. Kept as sent only from a
/// peer in `forward.trusted_proxies`; from anyone else they are removed, and
/// the proxy sets `X-Forwarded-For`, `-Host` and `-Proto` itself.
pub const FORWARDING: [&str; 12] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
];

/// Fields the proxy owns in responses: an upstream's copy is dropped and
/// the proxy's own value is the only one the client sees.
pub const PROXY_OWNED_RESPONSE: [&str; 1] = [super::REVOCATION_STATUS];

/// Names no claim may be mapped to: the proxy sets or needs these itself.
pub fn reserved(name: &str) -> bool {
    const OTHERS: [&str; 5] = [
        "host",
        "authorization",
        "cookie",
        "content-length",
        "transfer-encoding",
    ];
    [
        &HOP_BY_HOP[..],
        &FORWARDING,
        &ROUTING_OVERRIDES,
        &OTHERS,
        &PROXY_OWNED_RESPONSE,
    ]
    .iter()
    .any(|list| in_list(name, list))
}

/// [`check`] as a check of the whole settings, for
/// [`crate::config::Settings::load_checked`]: listed with the file's other
/// problems.
pub fn check_settings(settings: &crate::config::Settings) -> Vec<crate::config::Problem> {
    check(&settings.forward)
}

/// Problems with `forward:` that only the header policy can see: a claim
/// mapped to a header the proxy sets or needs itself.
pub fn check(forward: &ForwardSettings) -> Vec<crate::config::Problem> {
    let rid = &forward.request_id;
    let mut problems: Vec<_> = forward
        .claims_to_headers
        .iter()
        .filter(|(_, header)| reserved(header) || (!rid.is_empty() && same_field(header, rid)))
        .map(|(claim, header)| crate::config::Problem {
            path: format!("forward.claims_to_headers.{claim}"),
            message: format!("{header} cannot carry claims: the proxy sets or needs it itself"),
        })
        .collect();
    if !rid.is_empty() && (reserved(rid) || HeaderName::from_bytes(rid.as_bytes()).is_err()) {
        problems.push(crate::config::Problem {
            path: "forward.request_id".into(),
            message: format!(
                "{rid:?} cannot carry request ids: give a header name the proxy does not set itself, such as x-request-id, or \"\" for none"
            ),
        });
    }
    problems
}

/// Two field names are the same in any case and with `_` standing for `-`.
pub fn same_field(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| norm(x) == norm(y))
}

fn in_list(name: &str, list: &[&str]) -> bool {
    list.iter().any(|c| same_field(name, c))
}

/// What becomes of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Keep,
    Drop,
    /// `Content-Length` / `Transfer-Encoding`: the path's own framing decides.
    Framing,
}

/// The proxy's header policy, built once per configuration.
pub struct Policy {
    identity: Vec<HeaderName>,
    /// `forward.request_id`, when on.
    request_id: Option<HeaderName>,
    strip_authorization: bool,
    trusted: Vec<Cidr>,
    host: HostMode,
    /// `jwt.token_from` header names: their other spellings (`_` for `-`)
    /// are dropped, so the app cannot read a token the proxy never checked.
    token_headers: Vec<HeaderName>,
    /// `jwt.token_from` cookie and query parameter names.
    token_cookies: Vec<String>,
    token_queries: Vec<String>,
}

/// What the policy needs to know of one request before walking its fields.
pub struct RequestView<'a> {
    /// Names listed in `Connection`.
    connection: Vec<&'a [u8]>,
    trusted_peer: bool,
    /// Drop `Authorization` (`forward.authorization: strip`, token verified).
    strip_authorization: bool,
    /// The request's token did not pass (a public route): every place a
    /// token is read from is emptied before the request goes on.
    drop_tokens: bool,
    /// The client's `Host` (HTTP/1) or `:authority` (h2).
    host: Option<&'a [u8]>,
    /// The client's `X-Forwarded-For` values, kept for a trusted peer.
    forwarded_for: Vec<&'a [u8]>,
    /// A trusted peer sent its own `X-Forwarded-Host` / `-Proto`: kept.
    peer_set_host: bool,
    peer_set_proto: bool,
    peer: IpAddr,
    tls: bool,
    request_id: RequestId,
}

impl RequestView<'_> {
    /// The request's token did not pass: see [`Policy::unchecked`].
    pub fn drops_tokens(&self) -> bool {
        self.drop_tokens
    }
}

/// Where a request's id (`forward.request_id`) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestId {
    /// `forward.request_id` is off: the field is an ordinary one.
    Off,
    /// The client sent exactly one well-formed value: forwarded as sent.
    Client,
    /// Made here, because the client sent none, several or a malformed
    /// one: the client's copies are dropped and this one is sent.
    Generated(GeneratedId),
}

/// A request id made by the proxy: 32 hex digits, a random per-process
/// prefix and a counter, so ids never repeat within or across processes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GeneratedId([u8; 32]);

impl GeneratedId {
    fn next() -> GeneratedId {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(crate::revocation::clock::unique_seed);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; 32];
        let digits = u128::from(prefix) << 64 | u128::from(n);
        for (i, b) in out.iter_mut().enumerate() {
            let nibble = ((digits >> (124 - 4 * i)) & 0xf) as u8;
            *b = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
        }
        GeneratedId(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for GeneratedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's request id is kept when it is 1 to 128 visible ASCII
/// characters without quotes, backslashes or commas: safe in a log line
/// and one value, not a list.
fn usable_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b','))
}

/// A request whose `Host` cannot be used (RFC 9112 §3.2: answer 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no Host, more than one, one that is not host[:port], or one that differs from the target's authority")]
pub struct BadHost;

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal
/// in brackets or a reg-name (unreserved, `%HH`, sub-delims), then digits.
/// A Host with `/`, `@`, `?`, spaces or a second `:` is not an authority an
/// app could agree on with the proxy.
pub fn valid_host(value: &[u8]) -> bool {
    fn name_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    }
    fn escapes_ok(name: &[u8]) -> bool {
        let mut i = 0;
        while let Some(&b) = name.get(i) {
            if b == b'%' {
                let hex = |j: usize| name.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            } else if name_byte(b) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    }
    let value = value.trim_ascii();
    let (name_ok, rest) = if let Some(inside) = value.strip_prefix(b"[") {
        match inside.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = inside.get(..end).unwrap_or_default();
                (
                    !literal.is_empty() && literal.iter().all(|&b| name_byte(b) || b == b':'),
                    inside.get(end + 1..).unwrap_or_default(),
                )
            }
            None => return false,
        }
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        (
            escapes_ok(value.get(..end).unwrap_or_default()),
            value.get(end..).unwrap_or_default(),
        )
    };
    name_ok
        && match rest.split_first() {
            None => true,
            Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
}

/// The comma-separated tokens of a field value, trimmed.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A request `Transfer-Encoding` naming a coding other than `chunked`
/// (`gzip, chunked`): the proxy frames bodies only, so it answers 501.
pub fn unknown_transfer_coding<F: Fields + ?Sized>(fields: &F) -> bool {
    fields
        .values("transfer-encoding")
        .flat_map(tokens)
        .any(|c| !c.eq_ignore_ascii_case(b"chunked"))
}

/// Names listed in the `Connection` fields.
fn connection_names<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    values.flat_map(tokens).collect()
}

/// Named in `Connection` (and so hop-by-hop), framing and Host aside: those
/// are not the peer's to drop.
fn named_in(connection: &[&[u8]], name: &str) -> bool {
    !connection.is_empty()
        && !same_field(name, "content-length")
        && !same_field(name, "host")
        && connection.iter().any(|c| same_bytes(name.as_bytes(), c))
}

impl Policy {
    /// Header names are checked by config validation; invalid ones are skipped.
    pub fn new(forward: &ForwardSettings) -> Policy {
        Policy {
            identity: forward
                .claims_to_headers
                .iter()
                .filter_map(|(_, h)| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            strip_authorization: forward.authorization
                == crate::config::AuthorizationForward::Strip,
            trusted: forward.trusted_proxies.clone(),
            host: forward.host,
            request_id: (!forward.request_id.is_empty())
                .then(|| HeaderName::from_bytes(forward.request_id.as_bytes()).ok())
                .flatten(),
            token_headers: Vec::new(),
            token_cookies: Vec::new(),
            token_queries: Vec::new(),
        }
    }

    /// The headers tokens are read from (`jwt.token_from`).
    pub fn with_token_headers(mut self, sources: &[crate::config::TokenSource]) -> Policy {
        self.token_headers = sources
            .iter()
            .filter_map(|s| match s {
                crate::config::TokenSource::Header(h) => HeaderName::from_bytes(h.as_bytes()).ok(),
                _ => None,
            })
            .collect();
        for s in sources {
            match s {
                crate::config::TokenSource::Cookie(c) => self.token_cookies.push(c.clone()),
                crate::config::TokenSource::Query(q) => self.token_queries.push(q.clone()),
                crate::config::TokenSource::Header(_) => {}
            }
        }
        self
    }

    /// The id this request goes on with; decided once per request, before
    /// admission, so a denial's access line carries it too.
    pub fn request_id<F: Fields + ?Sized>(&self, fields: &F) -> RequestId {
        let Some(name) = &self.request_id else {
            return RequestId::Off;
        };
        let mut values = fields.values(name.as_str());
        // A client that names it in `Connection` has it dropped as
        // hop-by-hop: then the proxy's own goes in its place.
        let hop = || {
            fields
                .values("connection")
                .flat_map(tokens)
                .any(|c| same_bytes(c, name.as_str().as_bytes()))
        };
        match (values.next(), values.next()) {
            (Some(v), None) if usable_request_id(v) && !hop() => RequestId::Client,
            _ => RequestId::Generated(GeneratedId::next()),
        }
    }

    /// The request id as text, for an access line.
    pub fn request_id_text<F: Fields + ?Sized>(&self, fields: &F, id: RequestId) -> Option<String> {
        match (id, &self.request_id) {
            (RequestId::Off, _) | (_, None) => None,
            (RequestId::Generated(g), _) => Some(g.as_str().to_string()),
            (RequestId::Client, Some(name)) => fields
                .values(name.as_str())
                .next()
                .and_then(visible_ascii)
                .map(str::to_string),
        }
    }

    /// `peer` is listed in `forward.trusted_proxies`.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer))
    }

    /// Reads what the field walk needs. `authority` is the request target's
    /// (h2 `:authority`, an absolute-form target), used when there is no Host.
    /// `host_required`: an HTTP/1.1 request needs a Host or an authority
    /// (RFC 9112 §3.2); HTTP/1.0 and h2 may go without.
    pub fn view<'a, F: Fields + ?Sized>(
        &self,
        fields: &'a F,
        authority: Option<&'a [u8]>,
        host_required: bool,
        peer: IpAddr,
        tls: bool,
        request_id: RequestId,
    ) -> Result<RequestView<'a>, BadHost> {
        let mut hosts = fields.values("host");
        let host = hosts.next();
        if hosts.next().is_some() || host.is_some_and(|h| !valid_host(h)) {
            return Err(BadHost);
        }
        if host_required && host.or(authority).is_none() {
            return Err(BadHost);
        }
        if let (Some(h), Some(a)) = (host, authority) {
            if !h.eq_ignore_ascii_case(a) {
                return Err(BadHost);
            }
        }
        let trusted_peer = self.trusts(peer);
        Ok(RequestView {
            connection: connection_names(fields.values("connection")),
            trusted_peer,
            strip_authorization: false,
            drop_tokens: false,
            host: host.or(authority),
            forwarded_for: if trusted_peer {
                fields.values("x-forwarded-for").collect()
            } else {
                Vec::new()
            },
            peer_set_host: trusted_peer && fields.values("x-forwarded-host").next().is_some(),
            peer_set_proto: trusted_peer && fields.values("x-forwarded-proto").next().is_some(),
            peer,
            tls,
            request_id,
        })
    }

    /// The request's token verified: `forward.authorization: strip` applies.
    pub fn verified(&self, view: &mut RequestView<'_>) {
        view.strip_authorization = self.strip_authorization;
    }

    /// The request carried a token that did not pass (on a public route):
    /// its headers, cookies and query parameters are taken out.
    pub fn unchecked(&self, view: &mut RequestView<'_>) {
        view.drop_tokens = true;
    }

    /// The query the upstream receives: as sent, unless the request's token
    /// did not pass, then without the token parameters (the others in their
    /// order, joined with `&`). `None` when nothing is left.
    pub fn query<'q>(
        &self,
        view: &RequestView<'_>,
        query: Option<&'q str>,
    ) -> Option<Cow<'q, str>> {
        let query = query?;
        if !view.drop_tokens || self.token_queries.is_empty() {
            return Some(Cow::Borrowed(query));
        }
        let kept: Vec<&str> = query
            .split(['&', ';'])
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
                !self
                    .token_queries
                    .iter()
                    .any(|t| same_name(name.as_bytes(), t))
            })
            .collect();
        (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
    }

    /// The `Cookie` value the app receives when the request's token did not
    /// pass: the client's cookies (all fields, split at `;` and `,` as the
    /// token is read) without the token cookies, joined with `"; "`. `None`
    /// when nothing is left.
    pub fn cookies<'v>(
        &self,
        view: &RequestView<'_>,
        values: impl Iterator<Item = &'v [u8]>,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for value in values {
            for pair in value.split(|&b| b == b';' || b == b',') {
                let pair = pair.trim_ascii();
                let name = pair
                    .iter()
                    .position(|&b| b == b'=')
                    .and_then(|eq| pair.get(..eq))
                    .unwrap_or(pair);
                let token =
                    view.drop_tokens && self.token_cookies.iter().any(|t| same_name(name, t));
                if pair.is_empty() || token {
                    continue;
                }
                if !out.is_empty() {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(pair);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// What becomes of one client request field.
    pub fn request_field(&self, view: &RequestView<'_>, name: &str) -> Field {
        if same_field(name, "content-length") || same_field(name, "transfer-encoding") {
            return if name.contains('_') {
                Field::Drop
            } else {
                Field::Framing
            };
        }
        let forwarding = in_list(name, &FORWARDING);
        let drop = in_list(name, &HOP_BY_HOP)
            || in_list(name, &ROUTING_OVERRIDES)
            || same_field(name, "host")
            || (forwarding && !view.trusted_peer)
            // Set by the proxy below, even for a trusted peer.
            || same_field(name, "x-forwarded-for")
            || self.identity.iter().any(|i| same_field(name, i.as_str()))
            // `X_Access_Token` beside the checked `X-Access-Token`.
            || self.token_headers.iter().any(|t| {
                same_field(name, t.as_str()) && !name.eq_ignore_ascii_case(t.as_str())
            })
            || (view.strip_authorization && same_field(name, "authorization"))
            // A token that did not pass, in any spelling of its header.
            || (view.drop_tokens && self.token_headers.iter().any(|t| same_field(name, t.as_str())))
            || named_in(&view.connection, name)
            || self.request_id.as_ref().is_some_and(|rid| {
                // Any spelling but the client's one usable value is dropped.
                same_field(name, rid.as_str())
                    && !(view.request_id == RequestId::Client
                        && name.eq_ignore_ascii_case(rid.as_str()))
            });
        if drop {
            Field::Drop
        } else {
            Field::Keep
        }
    }

    /// The fields the proxy adds to a forwarded request, in order: the
    /// verified token's claim headers, `Host`, `X-Forwarded-Host`,
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, and a generated request id.
    pub fn added_fields(
        &self,
        view: &RequestView<'_>,
        claims: &[(HeaderName, HeaderValue)],
        upstream_authority: &str,
        mut emit: impl FnMut(Name<'_>, &[u8]),
    ) {
        for (name, value) in claims {
            emit(Name::Claim(name), value.as_bytes());
        }
        let host = match (self.host, view.host) {
            (HostMode::Preserve, Some(h)) => h,
            _ => upstream_authority.as_bytes(),
        };
        emit(Name::Proxy("host"), host);
        if let Some(h) = view.host {
            if !view.peer_set_host {
                emit(Name::Proxy("x-forwarded-host"), h);
            }
        }
        let mut xff = Vec::with_capacity(64);
        for prev in &view.forwarded_for {
            if let Some(v) = visible_ascii(prev).map(str::trim).filter(|v| !v.is_empty()) {
                xff.extend_from_slice(v.as_bytes());
                xff.extend_from_slice(b", ");
            }
        }
        push_ip(&mut xff, view.peer);
        emit(Name::Proxy("x-forwarded-for"), &xff);
        if !view.peer_set_proto {
            let proto: &[u8] = if view.tls { b"https" } else { b"http" };
            emit(Name::Proxy("x-forwarded-proto"), proto);
        }
        if let (RequestId::Generated(id), Some(name)) = (&view.request_id, &self.request_id) {
            emit(Name::RequestId(name), id.as_str().as_bytes());
        }
    }

    /// What becomes of one upstream response field; `connection` are the
    /// names the response's own `Connection` fields list.
    pub fn response_field(&self, connection: &[&[u8]], name: &str) -> Field {
        if same_field(name, "content-length") || same_field(name, "transfer-encoding") {
            // `Content_Length` frames nothing here but might to a client.
            return if name.contains('_') {
                Field::Drop
            } else {
                Field::Framing
            };
        }
        if in_list(name, &HOP_BY_HOP)
            || in_list(name, &PROXY_OWNED_RESPONSE)
            || named_in(connection, name)
        {
            Field::Drop
        } else {
            Field::Keep
        }
    }

    /// The names a response's `Connection` fields list.
    pub fn response_connection<'a, F: Fields + ?Sized>(&self, fields: &'a F) -> Vec<&'a [u8]> {
        connection_names(fields.values("connection"))
    }
}

/// Appends `ip` as text (what `Display` writes), without formatting
/// machinery for the common IPv4 case: it is written once per request.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// The name of a field the proxy adds.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// A `forward.claims_to_headers` header.
    Claim(&'a HeaderName),
    /// `host`, `x-forwarded-*`.
    Proxy(&'static str),
    /// `forward.request_id`.
    RequestId(&'a HeaderName),
}

impl Name<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Name::Claim(n) | Name::RequestId(n) => n.as_str(),
            Name::Proxy(n) => n,
        }
    }

    pub fn to_header_name(self) -> HeaderName {
        match self {
            Name::Claim(n) | Name::RequestId(n) => n.clone(),
            Name::Proxy(n) => HeaderName::from_static(n),
        }
    }
}

/// What a route's applied action adds to the response, on every path:
/// `Revocation-Status` (`stored` / `pending`; the proxy owns it, so it
/// replaces any other) and, with `clear_cookie`, a `Set-Cookie` that
/// expires the token cookie in the browser (beside the app's own).
pub fn add_action_fields(
    headers: &mut http::HeaderMap,
    rule: &crate::routes::Rule,
    written: crate::revocation::WriteStatus,
) {
    headers.insert(
        HeaderName::from_static(crate::proxy::REVOCATION_STATUS),
        HeaderValue::from_static(written.label()),
    );
    if let Some(cookie) = &rule.clear_cookie {
        headers.append(http::header::SET_COOKIE, cookie.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let samples = [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.100.199",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ];
        for text in samples {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = b"x, ".to_vec();
            push_ip(&mut out, ip);
            assert_eq!(out, format!("x, {ip}").into_bytes());
        }
    }

    #[test]
    fn host_values_are_host_and_port_only() {
        for ok in [
            "example.com",
            "example.com:8080",
            "EXAMPLE.com:",
            "127.0.0.1:1",
            "[::1]:8080",
            "[2001:db8::1]",
            "a-b_c~d%41",
            "",
            " example.com ",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "a b",
            "example.com/admin",
            "user@example.com",
            "example.com:80:80",
            "example.com:8o",
            "example.com?x",
            "example.com#x",
            "[::1",
            "[]:80",
            "[::1]x",
            "a%4",
            "a%zz",
            "a\\b",
            "\u{7f}",
            "h\u{e9}",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?}");
        }
    }
}
