//! `revocation.compat` against the real npm packages (tests/peers/compat,
//! installed by scripts/test.sh): Node calls `express-jwt-blacklist` 1.1.0's
//! `revoke` / `purge` against a real redis-server and memcached, and the
//! proxy refuses exactly the tokens the library's own `isRevoked` refuses;
//! tokens signed by `jwt-redis` 7 pass while their record lives and get 401
//! once `destroy` removed it.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::servers::{Memcached, Redis};
use support::*;

/// Runs one command of a peer script; its JSON line.
fn node(script: &str, args: &[String], env: &[(&str, &str)]) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/compat");
    assert!(
        dir.join("node_modules/express-jwt-blacklist").is_dir(),
        "the compat peer is not installed: `npm ci --prefix tests/peers/compat` (scripts/test.sh does it)"
    );
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "{script} {args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The library's CLI arguments: store, address, options, payload.
fn bl(cmd: &str, store: &str, addr: &str, opts: [&str; 3], payload: &Value) -> Vec<String> {
    let mut a = vec![cmd.to_string(), store.to_string(), addr.to_string()];
    a.extend(opts.iter().map(|o| o.to_string()));
    a.push(payload.to_string());
    a
}

fn token(payload: &Value) -> String {
    hs256(payload)
}

fn payload(sub: &str, jti: Value, iat: i64) -> Value {
    json!({ "sub": sub, "jti": jti, "iat": iat, "exp": now() + 600 })
}

/// Revokes and purges through the library, then asks both the library and
/// the proxy about every token: they must agree, token by token.
async fn blacklist_agrees(
    store: &str,
    addr: &str,
    store_yaml: &str,
    opts: [&str; 3],
    compat: &str,
) {
    let up = TestUpstream::start().await;
    let yaml = format!(
        "{}revocation:\n  store:\n{store_yaml}  compat:\n    type: express-jwt-blacklist\n{compat}",
        basic_with_admin()
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let t = now();
    let mut cases: Vec<Value> = vec![
        payload("alice", json!("a-1"), t - 100),
        payload("alice", json!("a-2"), t - 50),
        payload("alice", json!("123"), t - 40),
        payload("alice", json!(124), t - 30),
        payload("carol", json!("c-1"), t - 20),
    ];
    for (i, p) in cases.clone().iter().take(4).enumerate() {
        if i == 1 {
            continue; // a-2 is left alone
        }
        let r = node("blacklist.mjs", &bl("revoke", store, addr, opts, p), &[]);
        assert_eq!(r["ok"], true, "{r}");
    }
    let purge = node(
        "blacklist.mjs",
        &bl("purge", store, addr, opts, &payload("bob", json!("b"), t)),
        &[],
    );
    assert_eq!(purge["ok"], true, "{purge}");
    let at = purge["now"].as_i64().unwrap();
    for (n, iat) in [at - 3, at - 2, at - 1, at, at + 1].into_iter().enumerate() {
        cases.push(payload("bob", json!(format!("b-{n}")), iat));
    }
    let (mut refused, mut passed) = (0, 0);
    for p in &cases {
        let lib = node("blacklist.mjs", &bl("isRevoked", store, addr, opts, p), &[]);
        let lib_refuses = lib["revoked"]
            .as_bool()
            .unwrap_or_else(|| panic!("isRevoked {p}: {lib}"));
        let status = get(proxy.addr, "/api", Some(&token(p))).await.status;
        let want = if lib_refuses { 401 } else { 200 };
        assert_eq!(
            status, want,
            "{store} {opts:?}: {p} (library says revoked={lib_refuses})"
        );
        if lib_refuses {
            refused += 1;
        } else {
            passed += 1;
        }
    }
    assert!(
        refused >= 3 && passed >= 3,
        "both kinds: {refused} refused, {passed} passed"
    );
    // The admin API's status of a token says what the proxy does with it.
    let admin = proxy.admin.expect("admin listener");
    for p in &cases {
        let status = get(proxy.addr, "/api", Some(&token(p))).await.status;
        let asked = get(
            admin,
            &format!("/v1/status?token={}", token(p)),
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(asked.status, 200, "{}", asked.body);
        let said = asked.json();
        assert_eq!(said["revoked"], status == 401, "{p}: {said}");
        if status == 401 {
            assert_eq!(said["reason"], "compat", "{said}");
        }
    }
    proxy.stop().await;
}

const ADMIN_TOKEN: &str = "compat-admin-token-0123456789";

/// [`BASIC`] with an admin token, so `/v1/status` answers.
fn basic_with_admin() -> String {
    BASIC.replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!("admin:\n  listen: 127.0.0.1:0\n  token: {ADMIN_TOKEN}\n"),
    )
}

#[tokio::test]
async fn express_jwt_blacklist_records_in_redis_are_honoured() {
    let redis = Redis::start();
    let addr = redis.url().trim_start_matches("redis://").to_string();
    let store = format!("    type: redis\n    url: {}\n", redis.url());
    blacklist_agrees("redis", &addr, &store, ["-", "-", "-"], "").await;
    // Its options: another prefix, revoke by jti.
    blacklist_agrees(
        "redis",
        &addr,
        &store,
        ["bl:", "sub", "jti"],
        "    key_prefix: \"bl:\"\n    token_id: sub\n    index_by: jti\n",
    )
    .await;
}

#[tokio::test]
async fn express_jwt_blacklist_records_in_memcached_are_honoured() {
    let mc = Memcached::start();
    let addr = format!("127.0.0.1:{}", mc.port);
    let store = format!("    type: memcached\n    url: {}\n", mc.url());
    blacklist_agrees("memcached", &addr, &store, ["-", "-", "-"], "").await;
    blacklist_agrees(
        "memcached",
        &addr,
        &store,
        ["mb:", "sub", "jti"],
        "    key_prefix: \"mb:\"\n    token_id: sub\n    index_by: jti\n",
    )
    .await;
}

#[tokio::test]
async fn jwt_redis_tokens_pass_until_destroyed() {
    let redis = Redis::start();
    let addr = redis.url().trim_start_matches("redis://").to_string();
    let up = TestUpstream::start().await;
    let yaml = format!(
        "{BASIC}revocation:\n  store:\n    type: redis\n    url: {}\n  compat:\n    type: jwt-redis\n",
        redis.url()
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let sign = |sub: &str| {
        let r = node(
            "jwtredis.mjs",
            &[
                "sign".into(),
                addr.clone(),
                SECRET.into(),
                json!({ "sub": sub }).to_string(),
                "600".into(),
            ],
            &[],
        );
        (
            r["token"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_string(),
            r["jti"].as_str().unwrap().to_string(),
        )
    };
    let (one, one_jti) = sign("alice");
    let (two, _) = sign("alice");
    assert_eq!(get(proxy.addr, "/api", Some(&one)).await.status, 200);
    assert_eq!(get(proxy.addr, "/api", Some(&two)).await.status, 200);
    let verify = |t: &str| {
        node(
            "jwtredis.mjs",
            &["verify".into(), addr.clone(), SECRET.into(), t.to_string()],
            &[],
        )["valid"]
            .as_bool()
            .unwrap()
    };
    assert!(verify(&one));
    let d = node(
        "jwtredis.mjs",
        &["destroy".into(), addr.clone(), SECRET.into(), one_jti],
        &[],
    );
    assert_eq!(d["destroyed"], true, "{d}");
    assert!(!verify(&one), "the library refuses it now");
    assert_eq!(get(proxy.addr, "/api", Some(&one)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&two)).await.status, 200);
    // A token jwt-redis never signed has no record: not on the allow-list.
    let stranger = hs256(&claims("mallory"));
    assert_eq!(get(proxy.addr, "/api", Some(&stranger)).await.status, 401);
    proxy.stop().await;
}

#[test]
fn compat_needs_a_store_that_can_hold_the_records() {
    let up = "http://127.0.0.1:9";
    for (yaml, path) in [
        (
            format!("{BASIC}revocation:\n  compat:\n    type: express-jwt-blacklist\n"),
            "revocation.compat",
        ),
        (
            format!("{BASIC}revocation:\n  store:\n    type: memcached\n    url: memcache://127.0.0.1:9\n  compat:\n    type: jwt-redis\n"),
            "revocation.compat",
        ),
        (
            format!("{BASIC}revocation:\n  compat:\n    type: redis-blacklist\n"),
            "revocation.compat.type",
        ),
        (
            format!("{BASIC}revocation:\n  store:\n    type: redis\n    url: redis://127.0.0.1:9\n  compat:\n    type: jwt-redis\n    index_by: jti\n"),
            "revocation.compat.index_by",
        ),
    ] {
        let text = yaml.replace("${UPSTREAM}", up).replace("${SECRET}", SECRET);
        let err = revoke_proxy::config::Settings::parse(&text, std::path::Path::new("."), &|_| None)
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"));
        assert!(
            err.0.iter().any(|p| p.path == path),
            "{path}: {:?}",
            err.0
        );
    }
}
