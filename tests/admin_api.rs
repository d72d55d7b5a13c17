//! The admin API against its OpenAPI document (`docs/admin-api.yaml`): every
//! answer must have a documented status and match the documented schema;
//! request bodies the server accepts must match the documented request schema
//! and those it refuses must not.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::*;

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

struct Doc(Value);

impl Doc {
    fn load() -> Doc {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admin-api.yaml");
        let text = std::fs::read_to_string(path).expect("docs/admin-api.yaml");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
        Doc(serde_json::to_value(yaml).expect("YAML as JSON"))
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let mut cur = &self.0;
                for part in r.trim_start_matches("#/").split('/') {
                    cur = cur.get(part).unwrap_or_else(|| panic!("dangling $ref {r}"));
                }
                self.resolve(cur)
            }
            None => v,
        }
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        self.0["paths"]
            .get(path)
            .and_then(|p| p.get(method.to_lowercase()))
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
    }

    /// A small JSON-schema check: $ref, oneOf, type, required, properties,
    /// additionalProperties: false, enum, minimum.
    fn validate(&self, schema: &Value, data: &Value) -> Result<(), String> {
        let schema = self.resolve(schema);
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let ok = options
                .iter()
                .filter(|s| self.validate(s, data).is_ok())
                .count();
            return if ok == 1 {
                Ok(())
            } else {
                Err(format!("{data} matches {ok} of the oneOf options"))
            };
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(data) {
                return Err(format!("{data} not in {allowed:?}"));
            }
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let type_ok = match ty {
            None => true,
            Some("object") => data.is_object(),
            Some("string") => data.is_string(),
            Some("boolean") => data.is_boolean(),
            Some("number") => data.is_number(),
            Some("integer") => data.is_i64() || data.is_u64(),
            Some(other) => return Err(format!("schema type {other} unsupported here")),
        };
        if !type_ok {
            return Err(format!("{data} is not of type {}", ty.unwrap_or("?")));
        }
        if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), data.as_f64())
        {
            if n < min {
                return Err(format!("{data} < minimum {min}"));
            }
        }
        if let (Some(min), Some(text)) = (
            schema.get("minLength").and_then(Value::as_u64),
            data.as_str(),
        ) {
            if (text.chars().count() as u64) < min {
                return Err(format!("{data} is shorter than minLength {min}"));
            }
        }
        if let Value::Object(obj) = data {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap_or_default();
                if !obj.contains_key(r) {
                    return Err(format!("{data} lacks required {r}"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, v) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.validate(s, v)?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{k} is not a documented property"))
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Checks one answer of `method path` against the document.
    fn check_response(&self, path: &str, method: &str, resp: &Resp) {
        let op = self.operation(path, method);
        let status = resp.status.to_string();
        let documented = op["responses"].get(&status).unwrap_or_else(|| {
            panic!(
                "{method} {path} answered undocumented {status}: {}",
                resp.body
            )
        });
        let documented = self.resolve(documented);
        if let Some(headers) = documented.get("headers").and_then(Value::as_object) {
            for h in headers.keys() {
                assert!(
                    resp.header(h).is_some(),
                    "{method} {path} {status}: header {h} missing"
                );
            }
        }
        if let Some(schema) = documented.pointer("/content/application~1json/schema") {
            let body: Value = serde_json::from_str(&resp.body).unwrap_or_else(|_| {
                panic!("{method} {path} {status}: body is not JSON: {}", resp.body)
            });
            assert_eq!(resp.header("content-type"), Some("application/json"));
            if let Err(e) = self.validate(schema, &body) {
                panic!("{method} {path} {status}: {e}");
            }
        }
    }

    fn check_request(&self, path: &str, body: &Value, accepted: bool) {
        let schema =
            &self.operation(path, "post")["requestBody"]["content"]["application/json"]["schema"];
        let valid = self.validate(schema, body);
        assert_eq!(
            valid.is_ok(),
            accepted,
            "POST {path} {body}: server {} it, document says {valid:?}",
            if accepted { "accepted" } else { "refused" }
        );
    }
}

fn admin_config() -> String {
    BASIC.replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        "admin:\n  listen: 127.0.0.1:0\n  token: ${ADMIN}\n",
    )
}

async fn call(
    admin: std::net::SocketAddr,
    method: &str,
    target: &str,
    body: &str,
    ctype: &str,
) -> Resp {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    send(
        admin,
        method,
        target,
        &[("authorization", &auth), ("content-type", ctype)],
        body,
    )
    .await
}

/// An upstream and a proxy with the admin API on (token [`ADMIN_TOKEN`]).
async fn admin_proxy() -> (TestUpstream, TestProxy) {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(
        &admin_config(),
        &up.url(),
        &[("ADMIN", ADMIN_TOKEN.to_string())],
    )
    .await;
    (up, proxy)
}

/// POSTs a JSON body and checks the answer against the document.
async fn post_json(doc: &Doc, admin: std::net::SocketAddr, path: &str, body: &Value) -> Resp {
    let r = call(admin, "POST", path, &body.to_string(), "application/json").await;
    doc.check_response(path, "POST", &r);
    r
}

#[tokio::test]
async fn the_admin_api_matches_its_openapi_document() {
    let doc = Doc::load();
    let (_up, proxy) = admin_proxy().await;
    let admin = proxy.admin.unwrap();
    let mut exercised: BTreeSet<(String, String)> = BTreeSet::new();
    let mut seen = |path: &str, method: &str| {
        exercised.insert((path.to_string(), method.to_lowercase()));
    };

    for path in ["/", "/healthz", "/readyz", "/metrics"] {
        let r = get(admin, path, None).await;
        assert_eq!(r.status, 200, "{path}");
        doc.check_response(path, "GET", &r);
        seen(path, "GET");
    }

    // Revoke by token: 200, then the token is refused by the proxy.
    let c = claims("alice");
    let t = hs256(&c);
    assert_eq!(get(proxy.addr, "/api", Some(&t)).await.status, 200);
    let body = json!({ "token": t });
    doc.check_request("/v1/revoke", &body, true);
    let r = post_json(&doc, admin, "/v1/revoke", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "stored");
    doc.check_response("/v1/revoke", "POST", &r);
    seen("/v1/revoke", "POST");
    assert_eq!(get(proxy.addr, "/api", Some(&t)).await.status, 401);

    // Revoke by claims, with a lifetime.
    let body = json!({ "sub": "bob", "jti": "j-1", "exp": now() + 600, "lifetime": 60 });
    doc.check_request("/v1/revoke", &body, true);
    let r = post_json(&doc, admin, "/v1/revoke", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    doc.check_response("/v1/revoke", "POST", &r);
    let bob = hs256(&json!({ "sub": "bob", "jti": "j-1", "iat": now(), "exp": now() + 600 }));
    assert_eq!(get(proxy.addr, "/api", Some(&bob)).await.status, 401);

    // Malformed bodies: 400 saying what is wrong, and the document agrees.
    for (body, says) in [
        (
            json!({ "sub": "bob", "jti": "j", "lifetime": -5 }),
            "lifetime",
        ),
        (
            json!({ "sub": "bob", "jti": "j", "lifetime": 1.5 }),
            "lifetime",
        ),
        (
            json!({ "sub": "bob", "jti": "j", "lifetime": "60" }),
            "lifetime",
        ),
        (json!({ "sub": "bob" }), "jti"),
        (json!({ "sub": "bob", "jti": "j", "color": "red" }), "color"),
        (json!({ "sub": ["x"], "jti": "j" }), "sub"),
        (json!({ "sub": "", "jti": "j" }), "sub"),
        (json!({ "sid": "" }), "sid"),
        (json!("just a string"), "object"),
    ] {
        doc.check_request("/v1/revoke", &body, false);
        let r = post_json(&doc, admin, "/v1/revoke", &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap_or("")
                .contains(says),
            "{body}: {}",
            r.body
        );
        doc.check_response("/v1/revoke", "POST", &r);
    }
    let r = call(admin, "POST", "/v1/revoke", "{not json", "application/json").await;
    assert_eq!(r.status, 400);
    doc.check_response("/v1/revoke", "POST", &r);
    let forged = forge(&json!({"alg": "HS256"}), &claims("eve"), b"wrong-secret");
    let r = call(
        admin,
        "POST",
        "/v1/revoke",
        &json!({ "token": forged }).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(r.status, 400, "a JSON revoke of a token we do not accept");
    assert!(!r.body.contains(&forged), "never echo a token");

    // RFC 7009 form: 200 for valid and for unknown tokens; missing token 400.
    let c2 = claims("carol");
    let t2 = hs256(&c2);
    let r = call(
        admin,
        "POST",
        "/v1/revoke",
        &format!("token={t2}&token_type_hint=access_token"),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["revoked"], true);
    doc.check_response("/v1/revoke", "POST", &r);
    assert_eq!(get(proxy.addr, "/api", Some(&t2)).await.status, 401);
    let r = call(
        admin,
        "POST",
        "/v1/revoke",
        "token=not.a.token",
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!((r.status, r.json()["revoked"].clone()), (200, json!(false)));
    doc.check_response("/v1/revoke", "POST", &r);
    let r = call(
        admin,
        "POST",
        "/v1/revoke",
        "nothing=here",
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(r.status, 400);
    doc.check_response("/v1/revoke", "POST", &r);

    // Status: by token, by claims, not revoked, malformed.
    let r = call(
        admin,
        "GET",
        &format!("/v1/status?token={t}"),
        "",
        "application/json",
    )
    .await;
    assert_eq!(r.json(), json!({ "revoked": true, "reason": "token" }));
    doc.check_response("/v1/status", "GET", &r);
    seen("/v1/status", "GET");
    let r = call(
        admin,
        "GET",
        "/v1/status?sub=bob&jti=j-1",
        "",
        "application/json",
    )
    .await;
    assert_eq!(r.json()["revoked"], true);
    doc.check_response("/v1/status", "GET", &r);
    let r = call(
        admin,
        "GET",
        "/v1/status?sub=nobody&jti=x&iat=5",
        "",
        "application/json",
    )
    .await;
    assert_eq!(r.json(), json!({ "revoked": false }));
    doc.check_response("/v1/status", "GET", &r);
    for bad in [
        "/v1/status",
        "/v1/status?sub=a",
        "/v1/status?sub=a&jti=b&iat=soon",
    ] {
        let r = call(admin, "GET", bad, "", "application/json").await;
        assert_eq!(r.status, 400, "{bad}");
        doc.check_response("/v1/status", "GET", &r);
    }

    // Purge a subject; refuse malformed purges; purge all last.
    let old = hs256(&claims("dave"));
    // The purge comes a second later (the test clock moves; nothing waits).
    proxy.clock.advance(1);
    let at_proxy_now = |sub: &str| {
        let mut c = claims(sub);
        c["iat"] = json!(proxy.clock.now());
        hs256(&c)
    };
    let body = json!({ "sub": "dave" });
    doc.check_request("/v1/purge", &body, true);
    let r = post_json(&doc, admin, "/v1/purge", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "subject");
    doc.check_response("/v1/purge", "POST", &r);
    seen("/v1/purge", "POST");
    assert_eq!(get(proxy.addr, "/api", Some(&old)).await.status, 401);
    assert_eq!(
        get(proxy.addr, "/api", Some(&at_proxy_now("dave")))
            .await
            .status,
        200,
        "new token of the purge second"
    );
    for body in [
        json!({}),
        json!({ "all": false }),
        json!({ "sub": "x", "all": true }),
        json!({ "sub": "x", "lifetime": 0 }),
    ] {
        doc.check_request("/v1/purge", &body, false);
        let r = post_json(&doc, admin, "/v1/purge", &body).await;
        assert_eq!(r.status, 400, "{body}");
        doc.check_response("/v1/purge", "POST", &r);
    }

    // Wrong method, oversize body, no or wrong admin token.
    let r = call(admin, "GET", "/v1/revoke", "", "application/json").await;
    assert_eq!(r.status, 405);
    doc.check_response("/v1/revoke", "POST", &r);
    let r = call(admin, "POST", "/v1/status", "", "application/json").await;
    assert_eq!(r.status, 405);
    doc.check_response("/v1/status", "GET", &r);
    let huge = format!("{{\"sub\":\"{}\",\"jti\":\"j\"}}", "x".repeat(70 * 1024));
    let r = call(admin, "POST", "/v1/revoke", &huge, "application/json").await;
    assert_eq!(r.status, 413);
    doc.check_response("/v1/revoke", "POST", &r);
    for auth in [None, Some("Bearer wrong-token"), Some(ADMIN_TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let r = send(admin, "POST", "/v1/purge", &headers, "{\"all\":true}").await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(r.header("www-authenticate").is_some());
        doc.check_response("/v1/purge", "POST", &r);
    }
    // The scheme is case-insensitive; a lowercase one with the right token
    // is let in (a request that only fails its body: 400, not 401).
    let lower = format!("bearer {ADMIN_TOKEN}");
    let r = send(
        admin,
        "POST",
        "/v1/purge",
        &[("authorization", &lower)],
        "{}",
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.json());

    // Numeric claims: a query cannot say string or number, so both are read.
    let r = post_json(&doc, admin, "/v1/revoke", &json!({ "sub": 42, "jti": 7 })).await;
    assert_eq!(r.status, 200);
    let r = call(
        admin,
        "GET",
        "/v1/status?sub=42&jti=7",
        "",
        "application/json",
    )
    .await;
    doc.check_response("/v1/status", "GET", &r);
    assert_eq!(r.json(), json!({ "revoked": true, "reason": "token" }));
    let r = call(
        admin,
        "GET",
        "/v1/status?sub=42&jti=8",
        "",
        "application/json",
    )
    .await;
    assert_eq!(r.json(), json!({ "revoked": false }));
    let now = proxy.clock.now();
    let r = post_json(&doc, admin, "/v1/purge", &json!({ "sub": 43 })).await;
    assert_eq!(r.status, 200);
    let q = format!("/v1/status?sub=43&jti=q&iat={}", now - 10);
    let r = call(admin, "GET", &q, "", "application/json").await;
    assert_eq!(r.json(), json!({ "revoked": true, "reason": "subject" }));

    let r = post_json(&doc, admin, "/v1/purge", &json!({ "all": true })).await;
    assert_eq!(r.json()["kind"], "global");
    proxy.clock.advance(1);
    let r = call(
        admin,
        "GET",
        "/v1/status?sub=zz&jti=q&iat=1000",
        "",
        "application/json",
    )
    .await;
    assert_eq!(r.json(), json!({ "revoked": true, "reason": "global" }));

    // A whole identity-provider session: every token naming it, whatever
    // its subject; the same user's other session keeps working.
    let in_session = |sub: &str, sid: &str| {
        let now = proxy.clock.now();
        hs256(
            &json!({ "sub": sub, "jti": format!("{sub}-{sid}"), "sid": sid,
                       "iat": now, "exp": now + 600 }),
        )
    };
    let (s1, s2) = (in_session("dave", "sess-1"), in_session("dave", "sess-2"));
    let body = json!({ "sid": "sess-1" });
    doc.check_request("/v1/revoke", &body, true);
    let r = post_json(&doc, admin, "/v1/revoke", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "session");
    assert_eq!(get(proxy.addr, "/api", Some(&s1)).await.status, 401);
    assert_eq!(get(proxy.addr, "/api", Some(&s2)).await.status, 200);
    let r = call(admin, "GET", &format!("/v1/status?token={s1}"), "", "").await;
    assert_eq!(r.json(), json!({ "revoked": true, "reason": "session" }));
    doc.check_response("/v1/status", "GET", &r);
    let r = call(admin, "GET", "/v1/status?sub=x&jti=y&sid=sess-1", "", "").await;
    assert_eq!(r.json(), json!({ "revoked": true, "reason": "session" }));
    for body in [
        json!({ "sid": "s", "sub": "dave" }),
        json!({ "sid": ["s"] }),
    ] {
        doc.check_request("/v1/revoke", &body, false);
        let r = post_json(&doc, admin, "/v1/revoke", &body).await;
        assert_eq!(r.status, 400, "{body}");
    }

    // Global Token Revocation: every token of the subject issued before now.
    // (Issued after the purge-all above; the revocation comes a second later.)
    let erin = at_proxy_now("erin");
    assert_eq!(get(proxy.addr, "/api", Some(&erin)).await.status, 200);
    proxy.clock.advance(1);
    for body in [
        json!({ "sub_id": { "format": "iss_sub", "iss": "https://idp.example", "sub": "erin" } }),
        json!({ "sub_id": { "format": "opaque", "id": "frank" } }),
    ] {
        doc.check_request("/v1/global-token-revocation", &body, true);
        let r = post_json(&doc, admin, "/v1/global-token-revocation", &body).await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert!(r.body.is_empty());
    }
    seen("/v1/global-token-revocation", "POST");
    assert_eq!(get(proxy.addr, "/api", Some(&erin)).await.status, 401);
    for body in [
        json!({ "sub_id": { "format": "email", "email": "erin@example.com" } }),
        json!({ "sub_id": { "format": "iss_sub", "sub": "erin" } }),
        json!({ "sub": "erin" }),
    ] {
        doc.check_request("/v1/global-token-revocation", &body, false);
        let r = post_json(&doc, admin, "/v1/global-token-revocation", &body).await;
        assert_eq!(r.status, 400, "{body}");
    }
    let r = send(admin, "POST", "/v1/global-token-revocation", &[], "{}").await;
    assert_eq!(r.status, 401, "admin token required");
    doc.check_response("/v1/global-token-revocation", "POST", &r);

    // Every documented operation was exercised.
    let documented: BTreeSet<(String, String)> = doc.0["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    assert_eq!(documented, exercised);
    proxy.stop().await;
}

#[tokio::test]
async fn without_an_admin_token_the_api_is_off_and_never_on_the_proxy_port() {
    let doc = Doc::load();
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(BASIC, &up.url(), &[]).await;
    let admin = proxy.admin.unwrap();
    let r = post_json(&doc, admin, "/v1/purge", &json!({ "all": true })).await;
    assert_eq!(r.status, 403);
    // The proxy port forwards these paths like any other (token required).
    let t = hs256(&claims("alice"));
    for path in ["/metrics", "/healthz", "/v1/status?sub=a&jti=b"] {
        assert_eq!(get(proxy.addr, path, None).await.status, 401, "{path}");
        let r = get(proxy.addr, path, Some(&t)).await;
        assert_eq!(
            r.header("x-upstream"),
            Some("1"),
            "{path} reached the upstream"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn an_expired_token_keeps_nothing_and_curl_style_json_is_read() {
    let doc = Doc::load();
    let (_up, proxy) = admin_proxy().await;
    let admin = proxy.admin.unwrap();
    // Past its exp (and the leeway): refused anyway, nothing is kept.
    let expired = json!({ "sub": "old", "jti": "j1", "exp": now() - 3600 });
    let r = post_json(&doc, admin, "/v1/revoke", &expired).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["revoked"], false);
    assert_eq!(r.json()["reason"], "expired");
    assert!(proxy.app.revocations.is_empty(), "nothing kept");
    // A lifetime asks to keep it anyway.
    let kept = json!({ "sub": "old", "jti": "j1", "exp": now() - 3600, "lifetime": 60 });
    let r = post_json(&doc, admin, "/v1/revoke", &kept).await;
    assert_eq!(r.json()["status"], "stored", "{}", r.body);

    // `curl -d '{…}'` sends JSON labelled as a form: read as JSON.
    let body = json!({ "sub": "curl", "jti": "j2" }).to_string();
    let r = call(
        admin,
        "POST",
        "/v1/revoke",
        &body,
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "stored");
    let r = call(
        admin,
        "POST",
        "/v1/purge",
        r#"{"sub":"curl"}"#,
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A real form still goes the RFC 7009 way.
    let r = call(
        admin,
        "POST",
        "/v1/revoke",
        "token=not-a-jwt",
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["revoked"], false);
    proxy.stop().await;
}
