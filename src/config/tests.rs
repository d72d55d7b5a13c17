//! Unit tests for reading and validating the configuration.

use super::*;
use jsonwebtoken::Algorithm;
use std::path::Path;

fn env(name: &str) -> Option<String> {
    match name {
        "JWT_SECRET" => Some("s3cret-s3cret-s3cret-s3cret-s3cret".into()),
        "ADMIN" => Some("admin-token-0123456789".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new("."), &env)
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = "upstream: http://127.0.0.1:3000\njwt:\n  secret: ${JWT_SECRET}\n";

#[test]
fn minimal_file_gets_named_defaults() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(s.jwt.algorithms, vec![Algorithm::HS256]);
    assert_eq!(s.jwt.leeway, DEFAULT_LEEWAY);
    assert_eq!(s.jwt.require, vec!["exp", "iat"]);
    assert_eq!(
        s.jwt.token_from,
        vec![TokenSource::Header("Authorization".into())]
    );
    assert_eq!(s.revocation.subject_claim, "sub");
    assert_eq!(s.revocation.token_claim, "jti");
    assert_eq!(s.revocation.store.kind, StoreKind::Memory);
    assert_eq!(s.revocation.on_store_failure, OnStoreFailure::Deny);
    assert_eq!(s.timeouts.upstream_response, DEFAULT_UPSTREAM_RESPONSE);
    assert!(s.routes.is_empty());
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = r#"
upstream: ftp://x
listen: nowhere
bogus: 1
jwt:
  algorithms: [HS256, none, XX999]
  secret: ${UNSET_VAR}
  leeway: soon
revocation:
  store:
    type: file
routes:
  - path: /a
    methods: [POST, "BAD METHOD", connect]
  - path: relative
    auth: none
    action: revoke
    extra: true
timeouts:
  upstream_response: 0s
"#;
    let p = problems(text);
    let expect = [
        "upstream:",
        "listen:",
        "bogus: unknown key",
        "jwt.algorithms[1]",
        "jwt.algorithms[2]",
        "jwt.secret: environment variable UNSET_VAR is not set",
        "jwt.leeway",
        "revocation.store.path: required",
        "routes[0].methods[1]",
        "routes[0].methods[2]: CONNECT is refused",
        "routes[1].path",
        "routes[1]: auth: none cannot be combined",
        "routes[1].extra: unknown key",
        "timeouts.upstream_response",
    ];
    for e in expect {
        assert!(p.iter().any(|x| x.contains(e)), "missing {e:?} in {p:#?}");
    }
    // The unset variable is the problem; its literal text is not measured
    // as if it were the secret.
    assert!(!p.iter().any(|x| x.contains("HMAC secret has")), "{p:#?}");
}

#[test]
fn public_key_algorithms_need_a_key_and_hmac_a_secret() {
    let p = problems("upstream: http://a:1\njwt:\n  algorithms: [RS256]\n");
    assert!(
        p.iter().any(|x| x.contains("need public_key_file")),
        "{p:?}"
    );
    let p = problems("upstream: http://a:1\njwt:\n  algorithms: [HS256]\n");
    assert!(p.iter().any(|x| x.contains("need secret")), "{p:?}");
    let p = problems("upstream: http://a:1\njwt:\n  secret: x\n  secret_file: y\n");
    assert!(p.iter().any(|x| x.contains("give one of")), "{p:?}");
}

#[test]
fn hmac_secrets_must_be_as_long_as_the_hash_and_may_be_binary() {
    let p = problems("upstream: http://a:1\njwt:\n  secret: short\n");
    assert!(p.iter().any(|x| x.contains("needs at least 32")), "{p:?}");
    let p = problems(&format!(
        "upstream: http://a:1\njwt:\n  algorithms: [HS512]\n  secret: {}\n",
        "x".repeat(40)
    ));
    assert!(
        p.iter().any(|x| x.contains("HS512 needs at least 64")),
        "{p:?}"
    );
    // 32 random bytes, base64: accepted, and decoded.
    let s = parse(
        "upstream: http://a:1\njwt:\n  secret_base64: \"3q2+7wABAgP/7u3s6+rp6Ofm5eTj4uHg397d3Nva2dg=\"\n",
    )
    .unwrap();
    assert_eq!(s.jwt.secret.unwrap().0.len(), 32);
    let p = problems("upstream: http://a:1\njwt:\n  secret_base64: \"not base64!\"\n");
    assert!(p.iter().any(|x| x.contains("jwt.secret_base64")), "{p:?}");
}

#[test]
fn routes_and_forwarding_are_read() {
    let text = format!(
        "{MINIMAL}routes:\n  - path: /static/*\n    auth: none\n  - path: /logout\n    methods: [post]\n    action: revoke\n    apply_on: [2xx, 302]\n  - path: /logout/all\n    action: purge\n    respond: 204\nforward:\n  claims_to_headers:\n    sub: X-Auth-Subject\n  authorization: strip\n"
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.routes.len(), 3);
    assert!(!s.routes[0].auth);
    assert_eq!(s.routes[1].methods, Some(vec!["POST".to_string()]));
    assert_eq!(
        s.routes[1].apply_on,
        vec![StatusMatch::Class(2), StatusMatch::Exact(302)]
    );
    assert_eq!(s.routes[2].respond, Some(204));
    assert_eq!(
        s.forward.claims_to_headers,
        vec![("sub".to_string(), "X-Auth-Subject".to_string())]
    );
    assert_eq!(s.forward.authorization, AuthorizationForward::Strip);
}

#[test]
fn bypass_prone_route_patterns_are_refused() {
    for bad in ["/a/../b", "/a//b", "/a%2fb", "/a;b", "/a*b", "/a?x"] {
        let p = problems(&format!("{MINIMAL}routes:\n  - path: \"{bad}\"\n"));
        assert!(
            p.iter().any(|x| x.starts_with("routes[0].path")),
            "{bad}: {p:?}"
        );
    }
}

#[test]
fn describe_masks_secrets() {
    let text = format!("{MINIMAL}admin:\n  listen: 127.0.0.1:9901\n  token: ${{ADMIN}}\n");
    let s = parse(&text).unwrap();
    let shown = s.describe();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("admin-token"), "{shown}");
    assert!(shown.contains("********"));
    assert!(shown.contains("upstream_response: 30s"), "{shown}");
}

#[test]
fn shared_store_settings_are_checked_and_passwords_masked() {
    let ok = format!(
        "{MINIMAL}revocation:\n  store:\n    type: redis\n    url: redis://app:pw-123@127.0.0.1:6379/2\n    mode: per_request\n"
    );
    let s = parse(&ok).unwrap();
    let shown = s.describe();
    assert!(!shown.contains("pw-123"), "{shown}");
    assert!(
        shown.contains("redis://app:********@127.0.0.1:6379/2"),
        "{shown}"
    );
    let p = problems(&format!(
        "{MINIMAL}revocation:\n  store:\n    type: redis\n    url: http://x\n    cluster: [redis://a:1, 'b:2']\n"
    ));
    for want in [
        "revocation.store.url",
        "revocation.store.cluster[1]",
        "revocation.store: give either url or cluster",
    ] {
        assert!(p.iter().any(|x| x.starts_with(want)), "{want}: {p:?}");
    }
    let p = problems(&format!(
        "{MINIMAL}revocation:\n  store:\n    type: memcached\n    mode: replica\n"
    ));
    assert!(
        p.iter().any(|x| x.starts_with("revocation.store.url")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|x| x.starts_with("revocation.store.mode")),
        "{p:?}"
    );
    let p = problems(&format!("{MINIMAL}revocation:\n  store:\n    type: etcd\n"));
    assert!(
        p.iter().any(|x| x.contains("revocation.store.type")),
        "{p:?}"
    );
}

#[test]
fn a_misspelled_key_is_reported_even_when_its_variable_is_unset() {
    let p = problems(&format!("{MINIMAL}  secrte: ${{NOT_SET_ANYWHERE}}\n"));
    assert!(
        p.iter().any(|x| x.starts_with("jwt.secrte: unknown key")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|x| x.contains("NOT_SET_ANYWHERE is not set")),
        "{p:?}"
    );
}

#[test]
fn compat_may_be_named_alone() {
    let store = "  store:\n    type: redis\n    url: redis://127.0.0.1:6379\n";
    let short = parse(&format!(
        "{MINIMAL}revocation:\n  compat: express-jwt-blacklist\n{store}"
    ))
    .unwrap();
    let long = parse(&format!(
        "{MINIMAL}revocation:\n  compat:\n    type: express-jwt-blacklist\n{store}"
    ))
    .unwrap();
    assert!(short.revocation.compat.is_some());
    assert_eq!(short.revocation.compat, long.revocation.compat);
    let p = problems(&format!(
        "{MINIMAL}revocation:\n  compat: node-acl\n{store}"
    ));
    assert!(
        p.iter().any(|x| x.starts_with("revocation.compat")),
        "{p:?}"
    );
}

#[test]
fn intake_issuers_default_their_algorithms_by_key() {
    let text = format!(
        "{MINIMAL}intake:\n  issuers:\n    - issuer: https://a\n      jwks_url: https://a/jwks\n      audience: [app]\n    - issuer: https://b\n      secret: ${{JWT_SECRET}}\n      audience: app\n  backchannel_logout:\n    path: /bcl\n"
    );
    let s = parse(&text).unwrap();
    let [a, b] = s.intake.issuers.as_slice() else {
        panic!("two issuers")
    };
    assert_eq!(a.keys.algorithms.len(), 9);
    assert!(!a.keys.algorithms.contains(&Algorithm::HS256));
    assert_eq!(b.keys.algorithms, vec![Algorithm::HS256]);
    assert_eq!(b.audience, vec!["app"]);
    let logout = s.intake.backchannel_logout.as_ref().unwrap();
    assert_eq!(logout.accept_typ, vec!["logout+jwt", "JWT"]);
    assert!(!s.describe().contains("s3cret"));
}

#[test]
fn intake_problems_are_listed_with_their_paths() {
    let text = format!(
        "{MINIMAL}intake:\n  issuers:\n    - issuer: ''\n      jwks_url: ftp://x\n    - issuer: https://b\n      audience: [app]\n      bogus: 1\n  backchannel_logout:\n    path: /a/../b\n  ssf:\n    push_path: /ssf\n    authorization: short\n    poll: {{url: ftp://x, interval: 1ms, max_events: 0}}\n  status_list:\n    enabled: yes please\n    min_ttl: 2h\n    allowed_uris: [ftp://x]\n"
    );
    let p = problems(&text);
    for expected in [
        "intake.issuers[0].issuer: required",
        "intake.issuers[0].audience: required",
        "intake.issuers[0].jwks_url: must be an http",
        "intake.issuers[1]: give the issuer's keys",
        "intake.issuers[1].bogus: unknown key",
        "intake.backchannel_logout.path: must be an absolute path",
        "intake.ssf.authorization: the exact Authorization header",
        "intake.ssf.poll.url: required",
        "intake.ssf.poll.interval: must be between",
        "intake.ssf.poll.max_events: a whole number",
        "intake.status_list.enabled: expected true or false",
        "intake.status_list.min_ttl: must be above 0",
        "intake.status_list.allowed_uris[0]: must be an http",
    ] {
        assert!(
            p.iter().any(|x| x.starts_with(expected)),
            "{expected} missing from {p:#?}"
        );
    }
    let without_issuers = format!("{MINIMAL}intake:\n  backchannel_logout:\n    path: /bcl\n");
    assert!(problems(&without_issuers)
        .iter()
        .any(|x| x.starts_with("intake.issuers: list at least one issuer")));
}

#[test]
fn clear_cookie_needs_a_cookie_source_and_an_action() {
    let without_cookie = format!(
        "{MINIMAL}routes:\n  - path: /logout\n    action: revoke\n    clear_cookie: true\n  - path: /x\n    clear_cookie: {{path: nope, domain: 'a b'}}\n  - path: /y\n    action: revoke\n    clear_cookie: 3\n"
    );
    let p = problems(&without_cookie);
    for expected in [
        "routes[0].clear_cookie: jwt.token_from has no cookie",
        "routes[1].clear_cookie: only routes with an action",
        "routes[1].clear_cookie.path: must be a path",
        "routes[1].clear_cookie.domain: must be a host name",
        "routes[2].clear_cookie: expected true, false",
    ] {
        assert!(
            p.iter().any(|x| x.starts_with(expected)),
            "{expected} missing from {p:#?}"
        );
    }
    let with_cookie = "upstream: http://127.0.0.1:3000\njwt:\n  secret: ${JWT_SECRET}\n  token_from: [{cookie: sid_token}]\nroutes:\n  - path: /logout\n    action: revoke\n    clear_cookie: {path: /app}\n";
    let s = parse(with_cookie).unwrap();
    let c = s.routes[0].clear_cookie.as_ref().unwrap();
    assert_eq!(
        c.header,
        "sid_token=; Path=/app; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    );
}
