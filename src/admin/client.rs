//! `revoke-proxy revoke|purge|status`: command-line clients of the admin API.
//! Exit codes follow sysexits: 0 done, 64 usage, 65 refused as malformed
//! (400), 69 proxy unreachable or store unavailable, 77 admin token refused.

use bytes::Bytes;
use clap::Args;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::{
    DATAERR as EXIT_DATAERR, NOPERM as EXIT_NOPERM, SOFTWARE as EXIT_SOFTWARE,
    UNAVAILABLE as EXIT_UNAVAILABLE, USAGE as EXIT_USAGE,
};

/// Environment variable holding the admin token when `--token-file` is not given.
pub const TOKEN_ENV: &str = "REVOKE_PROXY_ADMIN_TOKEN";
/// How long the CLI waits for the admin API (10 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Admin listener of the proxy.
    #[arg(
        long,
        env = "REVOKE_PROXY_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    pub admin: String,
    /// File holding the admin token (default: $REVOKE_PROXY_ADMIN_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct TokenOrClaims {
    /// The JWT itself (visible to other users in `ps`; prefer --jwt-file).
    #[arg(long, conflicts_with_all = ["jwt_file", "sub"])]
    pub jwt: Option<String>,
    /// File holding the JWT; `-` reads it from standard input.
    #[arg(long, conflicts_with = "sub")]
    pub jwt_file: Option<PathBuf>,
    /// Subject claim value (with --jti instead of a JWT).
    #[arg(long, requires = "jti")]
    pub sub: Option<String>,
    /// Token claim value (`jti`, or a session id with token_claim: sid).
    #[arg(long, requires = "sub")]
    pub jti: Option<String>,
    /// Name of revocation.subject_claim on the proxy.
    #[arg(long, default_value = "sub")]
    pub subject_claim: String,
    /// Name of revocation.token_claim on the proxy.
    #[arg(long, default_value = "jti")]
    pub token_claim: String,
    /// Identity-provider session id: `revoke --sid` revokes every token of
    /// that session; `status --sub --jti --sid` checks it too.
    #[arg(long, conflicts_with_all = ["jwt", "jwt_file"])]
    pub sid: Option<String>,
    /// Name of revocation.session_claim on the proxy.
    #[arg(long, default_value = "sid")]
    pub session_claim: String,
    /// Send --sub, --jti and --sid values that read as numbers as JSON
    /// numbers: for tokens whose claims are numbers (`"sub": 42`), which
    /// are other values than the strings `"42"`. (`status` checks both.)
    #[arg(long)]
    pub numbers: bool,
}

/// A claim value from the command line: a JSON number with `--numbers`
/// when it reads as one, else the string.
fn claim_json(text: &str, numbers: bool) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(n @ Value::Number(_)) if numbers => n,
        _ => json!(text),
    }
}

/// What the CLI asks the admin API for.
#[derive(Debug, Clone)]
pub enum Call {
    Revoke {
        target: TokenOrClaims,
        exp: Option<i64>,
        lifetime: Option<i64>,
    },
    Purge {
        sub: Option<String>,
        all: bool,
        subject_claim: String,
        lifetime: Option<i64>,
        /// `--sub` as a JSON number when it reads as one.
        numbers: bool,
    },
    Status {
        target: TokenOrClaims,
        iat: Option<i64>,
    },
}

fn read_secret_file(path: &PathBuf) -> Result<String, String> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}

fn jwt_of(t: &TokenOrClaims) -> Result<Option<String>, String> {
    match (&t.jwt, &t.jwt_file) {
        (Some(j), _) => Ok(Some(j.trim().to_string())),
        (None, Some(f)) => read_secret_file(f).map(Some),
        (None, None) => Ok(None),
    }
}

/// Builds the request: method, path and query, JSON body.
fn request_of(call: &Call) -> Result<(Method, String, Option<Value>), String> {
    match call {
        Call::Revoke {
            target,
            exp,
            lifetime,
        } => {
            let body = revoke_body(target, *exp, *lifetime)?;
            Ok((Method::POST, "/v1/revoke".into(), Some(body)))
        }
        Call::Purge {
            sub,
            all,
            subject_claim,
            lifetime,
            numbers,
        } => {
            let mut body = Map::new();
            match (sub, all) {
                (Some(s), false) => {
                    body.insert(subject_claim.clone(), claim_json(s, *numbers));
                }
                (None, true) => {
                    body.insert("all".into(), json!(true));
                }
                _ => return Err("give exactly one of --sub or --all".into()),
            }
            if let Some(l) = lifetime {
                body.insert("lifetime".into(), json!(l));
            }
            Ok((Method::POST, "/v1/purge".into(), Some(Value::Object(body))))
        }
        Call::Status { target, iat } => {
            let query = status_query(target, *iat)?;
            Ok((Method::GET, format!("/v1/status?{query}"), None))
        }
    }
}

/// `/v1/revoke`'s body: the token itself, or its claims.
fn revoke_body(
    target: &TokenOrClaims,
    exp: Option<i64>,
    lifetime: Option<i64>,
) -> Result<Value, String> {
    let mut body = Map::new();
    match (jwt_of(target)?, &target.sub, &target.jti) {
        (Some(jwt), _, _) => {
            body.insert("token".into(), json!(jwt));
        }
        (None, None, None) if target.sid.is_some() => {
            let sid = target.sid.as_deref().unwrap_or_default();
            body.insert(
                target.session_claim.clone(),
                claim_json(sid, target.numbers),
            );
        }
        (None, Some(_), Some(_)) if target.sid.is_some() => {
            return Err(
                "give --sid alone (a whole session), or --sub with --jti (one token)".into(),
            )
        }
        (None, Some(sub), Some(jti)) => {
            body.insert(
                target.subject_claim.clone(),
                claim_json(sub, target.numbers),
            );
            body.insert(target.token_claim.clone(), claim_json(jti, target.numbers));
            if let Some(e) = exp {
                body.insert("exp".into(), json!(e));
            }
        }
        _ => return Err("give --jwt, --jwt-file, --sub with --jti, or --sid".into()),
    }
    if let Some(l) = lifetime {
        body.insert("lifetime".into(), json!(l));
    }
    Ok(Value::Object(body))
}

/// `/v1/status`'s query: the token itself, or its claims (and `iat`).
fn status_query(target: &TokenOrClaims, iat: Option<i64>) -> Result<String, String> {
    let enc = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    match (jwt_of(target)?, &target.sub, &target.jti) {
        (Some(jwt), _, _) => Ok(format!("token={}", enc(&jwt))),
        (None, Some(sub), Some(jti)) => {
            let mut q = format!(
                "{}={}&{}={}",
                enc(&target.subject_claim),
                enc(sub),
                enc(&target.token_claim),
                enc(jti)
            );
            if let Some(i) = iat {
                q.push_str(&format!("&iat={i}"));
            }
            if let Some(sid) = &target.sid {
                q.push_str(&format!("&{}={}", enc(&target.session_claim), enc(sid)));
            }
            Ok(q)
        }
        _ => Err("give --jwt, --jwt-file, or --sub with --jti".into()),
    }
}

/// Runs one call; prints the API's JSON answer; returns the exit code.
pub async fn run(conn: &Connection, call: &Call) -> i32 {
    match call_api(conn, call).await {
        Ok(code) | Err(code) => code,
    }
}

/// The steps of one call; `Err` carries the exit code of a failed step
/// (its message already printed).
async fn call_api(conn: &Connection, call: &Call) -> Result<i32, i32> {
    let admin_token = admin_token(conn)?;
    let (method, path, body) = request_of(call).map_err(|e| usage(&e))?;
    let base = conn.admin.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(usage("--admin must be an http:// URL (the admin listener speaks plain HTTP on loopback or a pod network)"));
    }
    let req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {admin_token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| usage(&format!("invalid --admin URL: {e}")))?;
    let (status, is_admin, text) = send(base, req).await?;
    Ok(exit_for(status, is_admin, &text))
}

fn usage(message: &str) -> i32 {
    eprintln!("revoke-proxy: {message}");
    EXIT_USAGE
}

/// `--token-file`, or the environment variable.
fn admin_token(conn: &Connection) -> Result<String, i32> {
    match &conn.token_file {
        Some(f) => read_secret_file(f).map_err(|e| usage(&e)),
        None => match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
            _ => Err(usage(&format!(
                "no admin token: give --token-file FILE or set {TOKEN_ENV}"
            ))),
        },
    }
}

/// Sends the call; its status, whether an admin listener answered, the body.
async fn send(base: &str, req: Request<Full<Bytes>>) -> Result<(u16, bool, String), i32> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let resp = match tokio::time::timeout(CALL_TIMEOUT, client.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("revoke-proxy: cannot reach the admin API at {base}: {e}. Is revoke-proxy running, and is {base} its admin.listen address?");
            return Err(EXIT_UNAVAILABLE);
        }
        Err(_) => {
            eprintln!(
                "revoke-proxy: the admin API at {base} did not answer within {CALL_TIMEOUT:?}"
            );
            return Err(EXIT_UNAVAILABLE);
        }
    };
    let status = resp.status().as_u16();
    let is_admin = resp.headers().contains_key(super::api::ADMIN_HEADER);
    match resp.into_body().collect().await {
        Ok(b) => Ok((
            status,
            is_admin,
            String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        )),
        Err(e) => {
            eprintln!("revoke-proxy: the answer was cut off: {e}");
            Err(EXIT_UNAVAILABLE)
        }
    }
}

/// Prints the answer and picks the exit code.
fn exit_for(status: u16, is_admin: bool, text: &str) -> i32 {
    if !is_admin {
        eprintln!(
            "revoke-proxy: this is not an admin listener (it answered {status} without the admin API's marks; \
             is --admin the proxy's listen port?). Point --admin at the address in admin.listen."
        );
        return EXIT_USAGE;
    }
    match status {
        200..=299 => {
            println!("{text}");
            crate::exit::OK
        }
        400 | 413 => {
            eprintln!("revoke-proxy: refused ({status}): {}", describe(text));
            EXIT_DATAERR
        }
        401 | 403 => {
            eprintln!("revoke-proxy: {} ({status})", describe(text));
            EXIT_NOPERM
        }
        503 => {
            eprintln!("revoke-proxy: store unavailable (503): {}", describe(text));
            EXIT_UNAVAILABLE
        }
        _ => {
            eprintln!(
                "revoke-proxy: unexpected answer {status}: {}",
                describe(text)
            );
            EXIT_SOFTWARE
        }
    }
}

fn describe(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error_description")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> TokenOrClaims {
        TokenOrClaims {
            jwt: None,
            jwt_file: None,
            sub: Some("alice".into()),
            jti: Some("a b".into()),
            subject_claim: "sub".into(),
            token_claim: "sid".into(),
            sid: None,
            session_claim: "sid".into(),
            numbers: false,
        }
    }

    #[test]
    fn numbers_go_as_numbers_only_when_asked() {
        let mut t = target();
        t.sub = Some("42".into());
        t.jti = Some("7".into());
        t.token_claim = "jti".into();
        let body = |t: &TokenOrClaims| {
            let (_, _, body) = request_of(&Call::Revoke {
                target: t.clone(),
                exp: None,
                lifetime: None,
            })
            .unwrap();
            body.unwrap()
        };
        assert_eq!(body(&t), json!({"sub": "42", "jti": "7"}));
        t.numbers = true;
        assert_eq!(body(&t), json!({"sub": 42, "jti": 7}));
        t.jti = Some("j-7".into());
        assert_eq!(body(&t), json!({"sub": 42, "jti": "j-7"}));
        let (_, _, purge) = request_of(&Call::Purge {
            sub: Some("42".into()),
            all: false,
            subject_claim: "sub".into(),
            lifetime: None,
            numbers: true,
        })
        .unwrap();
        assert_eq!(purge.unwrap(), json!({"sub": 42}));
    }

    #[test]
    fn a_session_is_revoked_by_its_own_claim_name() {
        let mut t = target();
        t.sub = None;
        t.jti = None;
        t.sid = Some("s-1".into());
        t.session_claim = "session_state".into();
        let (_, _, body) = request_of(&Call::Revoke {
            target: t.clone(),
            exp: None,
            lifetime: Some(60),
        })
        .unwrap();
        assert_eq!(
            body.unwrap(),
            json!({"session_state": "s-1", "lifetime": 60})
        );
        t.sub = Some("alice".into());
        t.jti = Some("j".into());
        assert!(request_of(&Call::Revoke {
            target: t.clone(),
            exp: None,
            lifetime: None,
        })
        .is_err());
        let (_, path, _) = request_of(&Call::Status {
            target: t,
            iat: None,
        })
        .unwrap();
        assert_eq!(path, "/v1/status?sub=alice&sid=j&session%5Fstate=s%2D1");
    }

    #[test]
    fn requests_follow_the_claim_names() {
        let (m, path, body) = request_of(&Call::Revoke {
            target: target(),
            exp: Some(5),
            lifetime: None,
        })
        .unwrap();
        assert_eq!((m, path.as_str()), (Method::POST, "/v1/revoke"));
        assert_eq!(
            body.unwrap(),
            json!({"sub": "alice", "sid": "a b", "exp": 5})
        );
        let (_, path, _) = request_of(&Call::Status {
            target: target(),
            iat: Some(9),
        })
        .unwrap();
        assert_eq!(path, "/v1/status?sub=alice&sid=a%20b&iat=9");
        assert!(request_of(&Call::Purge {
            sub: Some("x".into()),
            all: true,
            subject_claim: "sub".into(),
            lifetime: None,
            numbers: false,
        })
        .is_err());
    }
}
