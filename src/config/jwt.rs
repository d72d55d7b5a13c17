//! `jwt:` — which tokens verify: algorithms, keys, claim checks, and where
//! the token is found.

use super::reader::{Problems, Section};
use super::secret::{ser_duration, SecretBytes};
use super::{one_of, resolve};
use jsonwebtoken::Algorithm;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Default clock leeway for `exp`/`nbf` (30 s).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default realm in `WWW-Authenticate`.
pub const DEFAULT_REALM: &str = "revoke-proxy";

/// Where a token is looked for, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Header(String),
    Cookie(String),
    Query(String),
}

impl JwtSettings {
    /// The key files this section was read from: a change to one is a
    /// reason to read the configuration again (secret rotation).
    pub fn key_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.secret_file.iter().chain(&self.public_key_file)
    }
}

impl Serialize for TokenSource {
    /// As the file writes it: `{header: Authorization}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (kind, name) = match self {
            TokenSource::Header(n) => ("header", n),
            TokenSource::Cookie(n) => ("cookie", n),
            TokenSource::Query(n) => ("query", n),
        };
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(kind, name)?;
        m.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JwtSettings {
    pub algorithms: Vec<Algorithm>,
    /// HMAC secret: `secret`, `secret_base64`, or the contents of
    /// `secret_file` (read as `secret_encoding`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretBytes>,
    /// Where `secret_file` pointed (resolved): watched for rotation.
    #[serde(skip)]
    pub secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// The PEM read from `public_key_file`.
    #[serde(skip)]
    pub public_key_pem: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub leeway: Duration,
    pub require: Vec<String>,
    pub token_from: Vec<TokenSource>,
    pub realm: String,
    /// `typ`: when set, the header `typ` a token must carry, one of these
    /// (RFC 9068 access tokens: `at+jwt`); empty: any or none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub typ: Vec<String>,
}

fn read_algorithms(list: Option<Vec<String>>, path: &str, p: &mut Problems) -> Vec<Algorithm> {
    let list = list.unwrap_or_else(|| vec!["HS256".to_string()]);
    if list.is_empty() {
        p.add(path, "must name at least one algorithm");
    }
    let mut algs = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let item = format!("{path}[{i}]");
        if name.eq_ignore_ascii_case("none") {
            p.add(
                &item,
                "\"none\" is never accepted: unsigned tokens cannot be verified",
            );
            continue;
        }
        match Algorithm::from_str(name) {
            Ok(a) if !algs.contains(&a) => algs.push(a),
            Ok(_) => p.add(&item, format!("{name} is listed twice")),
            Err(_) => p.add(
                &item,
                format!("unknown algorithm {name:?} (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"),
            ),
        }
    }
    algs
}

fn read_token_sources(
    v: Option<&serde_yaml::Value>,
    path: &str,
    p: &mut Problems,
) -> Vec<TokenSource> {
    let Some(v) = v else {
        return vec![TokenSource::Header("Authorization".to_string())];
    };
    let serde_yaml::Value::Sequence(items) = v else {
        p.add(
            path,
            "expected a list like [{header: Authorization}, {cookie: access_token}]",
        );
        return Vec::new();
    };
    if items.is_empty() {
        p.add(path, "must list at least one place to find the token");
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let mut s = Section::open(Some(item), &item_path, p);
        let found = [
            ("header", s.string("header", p)),
            ("cookie", s.string("cookie", p)),
            ("query", s.string("query", p)),
        ];
        let given: Vec<_> = found
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        match given.as_slice() {
            [(kind, name)] if !name.is_empty() => out.push(match *kind {
                "header" => {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        p.add(&item_path, format!("{name:?} is not a valid header name"));
                    }
                    TokenSource::Header(name.clone())
                }
                "cookie" => TokenSource::Cookie(name.clone()),
                _ => TokenSource::Query(name.clone()),
            }),
            _ => p.add(
                &item_path,
                "needs exactly one of header, cookie or query, with a name",
            ),
        }
        s.finish(p);
    }
    out
}

pub(super) fn read_jwt(mut s: Section<'_>, base: &Path, p: &mut Problems) -> JwtSettings {
    let algorithms = read_algorithms(
        s.string_list("algorithms", p),
        &s.child_path("algorithms"),
        p,
    );
    let public_key_file = s.string("public_key_file", p).map(|f| resolve(base, &f));
    let jwks_url = s.string("jwks_url", p);
    let issuer = s.string("issuer", p);
    let audience = s.string_list("audience", p).unwrap_or_default();
    let leeway = s.duration("leeway", p).unwrap_or(DEFAULT_LEEWAY);
    let require = s
        .string_list("require", p)
        .unwrap_or_else(|| vec!["exp".to_string(), "iat".to_string()]);
    let token_path = s.child_path("token_from");
    let token_from = read_token_sources(s.get("token_from"), &token_path, p);
    let realm = read_realm(&mut s, p);
    let typ = s.string_list("typ", p).unwrap_or_default();
    if typ.iter().any(|t| t.trim().is_empty()) {
        p.add(&s.child_path("typ"), "empty typ value");
    }

    let (secret, secret_file) = read_secret(&mut s, base, p);
    if !p.silenced(&secret_path(&mut s)) {
        check_hmac_length(secret.as_ref(), &algorithms, s.path(), p);
    }
    let public_key_pem = read_public_key(public_key_file.as_deref(), &s, p);
    check_jwks_url(jwks_url.as_deref(), public_key_file.is_some(), &s, p);
    let given = GivenKeys {
        secret: secret.is_some(),
        public_key_file: public_key_file.is_some(),
        jwks_url: jwks_url.is_some(),
    };
    check_keys_fit(&algorithms, &given, s.path(), p);
    for (i, claim) in require.iter().enumerate() {
        if claim.is_empty() {
            let at = format!("{}[{i}]", s.child_path("require"));
            p.add(&at, "empty claim name");
        }
    }
    s.finish(p);
    JwtSettings {
        algorithms,
        secret,
        secret_file,
        public_key_file,
        public_key_pem,
        jwks_url,
        issuer,
        audience,
        leeway,
        require,
        token_from,
        realm,
        typ,
    }
}

/// `realm` (default [`DEFAULT_REALM`]): it goes inside a quoted string of
/// `WWW-Authenticate`.
fn read_realm(s: &mut Section<'_>, p: &mut Problems) -> String {
    let realm = s
        .string("realm", p)
        .unwrap_or_else(|| DEFAULT_REALM.to_string());
    if realm.contains('"') || realm.contains('\\') || realm.chars().any(char::is_control) {
        p.add(
            &s.child_path("realm"),
            "must not contain quotes, backslashes or control characters",
        );
    }
    realm
}

/// The PEM of `public_key_file`, read now so a missing file is a config error.
fn read_public_key(file: Option<&Path>, s: &Section<'_>, p: &mut Problems) -> Option<Vec<u8>> {
    let f = file?;
    match std::fs::read(f) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            p.add(
                &s.child_path("public_key_file"),
                format!("cannot read {}: {e}", f.display()),
            );
            None
        }
    }
}

fn check_jwks_url(url: Option<&str>, has_key_file: bool, s: &Section<'_>, p: &mut Problems) {
    let Some(u) = url else { return };
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        p.add(
            &s.child_path("jwks_url"),
            "must be an http:// or https:// URL",
        );
    }
    if has_key_file {
        p.add(s.path(), "give public_key_file or jwks_url, not both");
    }
}

/// Which kinds of key a `jwt:` section gives.
struct GivenKeys {
    secret: bool,
    public_key_file: bool,
    jwks_url: bool,
}

/// Every allowed algorithm has a key of its family, and no key is given
/// that no allowed algorithm uses.
fn check_keys_fit(algorithms: &[Algorithm], given: &GivenKeys, path: &str, p: &mut Problems) {
    let hmac = |a: &Algorithm| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    let uses_hmac = algorithms.iter().any(hmac);
    let uses_public = algorithms.iter().any(|a| !hmac(a));
    if uses_hmac && !given.secret {
        p.add(path, "HS* algorithms need secret or secret_file");
    }
    if uses_public && !given.public_key_file && !given.jwks_url {
        p.add(
            path,
            "RS*/PS*/ES*/EdDSA algorithms need public_key_file or jwks_url",
        );
    }
    if !uses_hmac && given.secret {
        p.add(path, "secret is set but no HS* algorithm is allowed");
    }
}

/// `secret`, `secret_base64` or `secret_file` (+ `secret_encoding`): at
/// most one; with the file's resolved path when it came from one.
fn read_secret(
    s: &mut Section<'_>,
    base: &Path,
    p: &mut Problems,
) -> (Option<SecretBytes>, Option<PathBuf>) {
    let text = s.string("secret", p);
    let b64 = s.string("secret_base64", p);
    let file = s.string("secret_file", p);
    let encoding_path = s.child_path("secret_encoding");
    let encoding = one_of(
        s.string("secret_encoding", p),
        &[("raw", false), ("base64", true)],
        false,
        &encoding_path,
        p,
    );
    let given = [text.is_some(), b64.is_some(), file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        p.add(s.path(), "give one of secret, secret_base64 or secret_file");
        return (None, None);
    }
    let file_path = file.as_ref().map(|f| super::resolve(base, f));
    let secret = if let Some(v) = text {
        Some(v.into_bytes())
    } else if let Some(v) = b64 {
        decode_base64(&v, &s.child_path("secret_base64"), p)
    } else if let Some(f) = file {
        match std::fs::read(super::resolve(base, &f)) {
            Ok(bytes) => {
                let trimmed = bytes.trim_ascii_end();
                if encoding {
                    let text = String::from_utf8_lossy(trimmed).into_owned();
                    decode_base64(text.trim(), &s.child_path("secret_file"), p)
                } else {
                    Some(trimmed.to_vec())
                }
            }
            Err(e) => {
                p.add(
                    &s.child_path("secret_file"),
                    format!("cannot read {f}: {e}"),
                );
                None
            }
        }
    } else {
        None
    };
    if matches!(&secret, Some(v) if v.is_empty()) {
        p.add(&s.child_path("secret"), "must not be empty");
    }
    (secret.map(SecretBytes), file_path)
}

/// Standard or URL-safe base64, padded or not.
fn decode_base64(text: &str, path: &str, p: &mut Problems) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let t = text.trim();
    let decoded = STANDARD
        .decode(t)
        .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')));
    match decoded {
        Ok(v) => Some(v),
        Err(_) => {
            p.add(path, "is not valid base64");
            None
        }
    }
}

/// The key the HMAC secret was given with (`secret`, `secret_base64` or
/// `secret_file`): when its variable was unset, its length is not news.
fn secret_path(s: &mut Section<'_>) -> String {
    ["secret", "secret_base64", "secret_file"]
        .into_iter()
        .find(|k| s.get(k).is_some())
        .map_or_else(|| s.path().to_string(), |k| s.child_path(k))
}

/// RFC 7518 §3.2: an HMAC key at least as long as the hash output.
fn check_hmac_length(
    secret: Option<&SecretBytes>,
    algorithms: &[Algorithm],
    path: &str,
    p: &mut Problems,
) {
    let Some(secret) = secret else { return };
    for alg in algorithms {
        let need = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => continue,
        };
        if secret.0.len() < need {
            p.add(
                path,
                format!(
                    "the HMAC secret has {} bytes; {alg:?} needs at least {need} (RFC 7518 §3.2)",
                    secret.0.len()
                ),
            );
        }
    }
}

/// Every asymmetric algorithm: the default for keys from a JWKS.
const PUBLIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The keys of a trusted issuer (`intake.issuers[i]`), read as `jwt` reads
/// them, as a `jwt` section with only its keys set. Without `algorithms`
/// they follow the keys: HS256 for a secret, RS256 for a public key file,
/// every asymmetric algorithm for a JWKS.
pub(super) fn read_issuer_keys(s: &mut Section<'_>, base: &Path, p: &mut Problems) -> JwtSettings {
    let listed = s.string_list("algorithms", p);
    let public_key_file = s.string("public_key_file", p).map(|f| resolve(base, &f));
    let jwks_url = s.string("jwks_url", p);
    let (secret, secret_file) = read_secret(s, base, p);
    let algorithms = match listed {
        Some(list) => read_algorithms(Some(list), &s.child_path("algorithms"), p),
        None => {
            let mut algs = Vec::new();
            if secret.is_some() {
                algs.push(Algorithm::HS256);
            }
            if public_key_file.is_some() {
                algs.push(Algorithm::RS256);
            }
            if jwks_url.is_some() {
                algs.extend(PUBLIC_ALGORITHMS);
            }
            if algs.is_empty() {
                p.add(
                    s.path(),
                    "give the issuer's keys: jwks_url, public_key_file or secret",
                );
            }
            algs
        }
    };
    if !p.silenced(&secret_path(s)) {
        check_hmac_length(secret.as_ref(), &algorithms, s.path(), p);
    }
    let public_key_pem = read_public_key(public_key_file.as_deref(), s, p);
    check_jwks_url(jwks_url.as_deref(), public_key_file.is_some(), s, p);
    if !algorithms.is_empty() {
        let given = GivenKeys {
            secret: secret.is_some(),
            public_key_file: public_key_file.is_some(),
            jwks_url: jwks_url.is_some(),
        };
        check_keys_fit(&algorithms, &given, s.path(), p);
    }
    JwtSettings {
        algorithms,
        secret,
        secret_file,
        public_key_file,
        public_key_pem,
        jwks_url,
        issuer: None,
        audience: Vec::new(),
        leeway: DEFAULT_LEEWAY,
        require: Vec::new(),
        token_from: Vec::new(),
        realm: DEFAULT_REALM.to_string(),
        typ: Vec::new(),
    }
}
