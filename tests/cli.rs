//! The binary from outside: `check`, bad configs (exit 64, nothing bound),
//! the demo, and the file store surviving `kill -9`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_revoke-proxy");

fn config_env(cmd: &mut Command) -> &mut Command {
    cmd.env("JWT_SECRET", SECRET)
        .env(
            "REVOKE_PROXY_ADMIN_TOKEN",
            "admin-token-for-tests-0123456789",
        )
        .env("SSF_PUSH_AUTH", "Bearer ssf-push-token-for-tests-0123")
}

#[test]
fn every_shipped_config_file_loads_and_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        if path.file_name().and_then(|n| n.to_str()) == Some("demo.yaml") {
            let s = revoke_proxy::demo::settings(&revoke_proxy::demo::DemoSetup {
                listen: "127.0.0.1:1".parse().unwrap(),
                admin: "127.0.0.1:3".parse().unwrap(),
                upstream: "127.0.0.1:2".parse().unwrap(),
                secret: "x-secret-x-secret-x-secret-x-secret".into(),
                admin_token: "demo-admin-token-0123456789".into(),
            })
            .expect("demo config loads");
            revoke_proxy::auth::Verifier::new(&s.jwt, &s.revocation, &s.forward)
                .expect("demo keys build");
            continue;
        }
        // `check` tests the store's directory: here it is a fresh one
        // (and, as shipped, one that does not exist on this machine).
        let text = std::fs::read_to_string(&path).unwrap();
        let state = tempfile::tempdir().unwrap();
        let copy = state.path().join(path.file_name().unwrap());
        let rewritten = text.replace("/var/lib/revoke-proxy", &state.path().display().to_string());
        let uses_state_dir = rewritten != text;
        std::fs::write(&copy, rewritten).unwrap();
        if uses_state_dir && !Path::new("/var/lib/revoke-proxy").exists() {
            let as_shipped = config_env(&mut Command::new(BIN))
                .args(["check", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(as_shipped.status.code(), Some(64), "{}", path.display());
            assert!(String::from_utf8_lossy(&as_shipped.stderr)
                .contains("revocation.store.path: directory /var/lib/revoke-proxy does not exist"));
        }
        let out = config_env(&mut Command::new(BIN))
            .args(["check", "--config"])
            .arg(&copy)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("is valid"), "{stdout}");
        assert!(!stdout.contains(SECRET), "check never prints the secret");
        assert!(
            !stdout.contains("admin-token-for-tests"),
            "nor the admin token"
        );
        round_trips(state.path(), &stdout);
    }
    assert!(
        seen >= 3,
        "config/ holds the example, quickstart and demo files"
    );
}

/// `revoke-proxy check --config path`, with the environment as it is.
fn check(path: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

/// The settings `check` printed are a configuration `check` accepts, and
/// checking them again prints them unchanged.
fn round_trips(dir: &Path, printed: &str) {
    let body = |out: &str| -> String { out.lines().skip(1).collect::<Vec<_>>().join("\n") };
    let again = dir.join("printed.yaml");
    std::fs::write(&again, printed).unwrap();
    let out = check(&again);
    assert!(
        out.status.success(),
        "printed settings fed back: {}\n{printed}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        body(&String::from_utf8_lossy(&out.stdout)),
        body(printed),
        "checking the printed settings prints them unchanged"
    );
}

#[test]
fn check_prints_every_kind_of_setting_as_a_config_that_checks_again() {
    let dir = tempfile::tempdir().unwrap();
    let keys = fixtures().join("keys");
    let yaml = format!(
        "listen: 127.0.0.1:18080\nupstream: http://127.0.0.1:3000\n\
         timeouts:\n  upstream_response: 1500ms\n  client_idle: 2m\n\
         jwt:\n  algorithms: [RS256, PS256]\n  public_key_file: {rsa}\n  issuer: https://id.example\n\
         \x20 audience: [app, api]\n  leeway: 5s\n  require: [exp]\n  realm: shop\n\
         \x20 token_from:\n    - header: Authorization\n    - cookie: access_token\n    - query: at\n\
         revocation:\n  subject_claim: uid\n  token_claim: tid\n  max_token_lifetime: 12h\n\
         \x20 on_store_failure: allow\n  max_staleness: 10s\n  store:\n    type: redis\n\
         \x20   url: redis://user:hunter2@127.0.0.1:6379/0\n    mode: per_request\n\
         \x20   key_prefix: \"shop:\"\n    timeout: 250ms\n    path: {spool}\n\
         routes:\n  - path: /logout\n    methods: [POST, GET]\n    action: revoke\n\
         \x20   apply_on: [2xx, 302]\n  - path: /password\n    methods: [POST]\n    action: purge\n\
         \x20 - path: /bye\n    action: revoke\n    respond: 204\n\
         \x20 - path: /public/*\n    auth: none\n  - path: /ws\n    upgrades: [websocket]\n\
         forward:\n  claims_to_headers:\n    uid: X-User\n    email: X-Email\n\
         \x20 authorization: strip\n  host: upstream\n  trusted_proxies: [10.0.0.0/8, \"::1/128\"]\n\
         admin:\n  listen: 127.0.0.1:19901\n  token: admin-token-for-tests-0123456789\n\
         log:\n  format: json\n  level: debug\n",
        rsa = keys.join("rsa.pub").display(),
        spool = dir.path().join("spool").display(),
    );
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = check(&file);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("hunter2") && !printed.contains("admin-token-for-tests"));
    for shown in [
        "- cookie: access_token",
        "- 2xx",
        "- '302'",
        "auth: none",
        "uid: X-User",
        "respond: 204",
    ] {
        assert!(printed.contains(shown), "{shown:?} in\n{printed}");
    }
    round_trips(dir.path(), &printed);
}

#[test]
fn bad_config_lists_every_problem_exits_64_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    drop(held);
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        format!("listen: 127.0.0.1:{port}\nupstream: nope\njwt:\n  algorithms: [none]\n  secrett: x\nroutes:\n  - path: /a\n    methods: [\"B A D\"]\n"),
    )
    .unwrap();
    for args in [
        vec!["run", "--config"],
        vec!["--config"],
        vec!["check", "--config"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).arg(&file);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        for path in [
            "upstream:",
            "jwt.algorithms[0]:",
            "jwt.secrett: unknown key",
            "routes[0].methods[0]:",
        ] {
            assert!(err.contains(path), "{args:?}: wanted {path} in {err}");
        }
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the port was never bound"
    );
}

#[test]
fn unset_environment_variable_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "upstream: http://127.0.0.1:1\njwt:\n  secret: ${SURELY_UNSET_VARIABLE_XYZ}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .env_remove("SURELY_UNSET_VARIABLE_XYZ")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("jwt.secret: environment variable SURELY_UNSET_VARIABLE_XYZ is not set"));
}

#[test]
fn header_policy_problems_are_listed_with_the_file_s_own() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        format!(
            "upstream: http://127.0.0.1:1\njwt:\n  secret: {SECRET}\n  bogus: 1\nforward:\n  claims_to_headers:\n    sub: X-Forwarded-For\n"
        ),
    )
    .unwrap();
    let out = check(&file);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jwt.bogus: unknown key"), "{err}");
    assert!(
        err.contains("forward.claims_to_headers.sub: X-Forwarded-For cannot carry claims"),
        "{err}"
    );
    assert!(err.contains("has 2 problem(s)"), "{err}");
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the child's stdout until a line contains `needle`; returns the lines read.
fn read_until(child: &mut Child, needle: &str) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Keep draining after the test stops listening: a closed pipe
            // would fail the child's later writes.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains(needle);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    panic!("never saw {needle:?}; got {lines:#?}");
}

fn start_binary(config: &Path) -> (Running, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = read_until(&mut child, "Proxy started");
    let started = lines.last().cloned().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&started).expect("json log line");
    let addr = v["listen"].as_str().unwrap().parse().unwrap();
    (Running(child), addr)
}

#[tokio::test]
async fn file_store_revocation_survives_kill_9_and_restart() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret: {SECRET}\nrevocation:\n  store:\n    type: file\n    path: {}\nroutes:\n  - path: /logout\n    methods: [POST]\n    action: revoke\n  - path: /account/password\n    methods: [POST]\n    action: purge\nlog:\n  format: json\n  level: info\n",
            up.url(),
            dir.path().join("revocations").display()
        ),
    )
    .unwrap();
    let mut older = claims("bob");
    older["iat"] = serde_json::json!(now() - 60);
    let (older, logged_out, purger, other) = (
        hs256(&older),
        hs256(&claims("alice")),
        hs256(&claims("bob")),
        hs256(&claims("alice")),
    );

    let (mut proxy, addr) = start_binary(&config);
    let r = post(addr, "/logout", &logged_out).await;
    assert_eq!(r.header("revocation-status"), Some("stored"));
    assert_eq!(
        post(addr, "/account/password", &purger)
            .await
            .header("revocation-status"),
        Some("stored")
    );
    assert_eq!(get(addr, "/api", Some(&logged_out)).await.status, 401);
    // kill -9: no chance to flush anything that was not already durable.
    proxy.0.kill().unwrap();
    proxy.0.wait().unwrap();

    let (_proxy, addr) = start_binary(&config);
    assert_eq!(
        get(addr, "/api", Some(&logged_out)).await.status,
        401,
        "revocation survived"
    );
    assert_eq!(
        get(addr, "/api", Some(&older)).await.status,
        401,
        "purge survived"
    );
    assert_eq!(
        get(addr, "/api", Some(&other)).await.status,
        200,
        "other tokens unaffected"
    );
}

#[tokio::test]
async fn demo_prints_a_token_and_curl_lines_that_work() {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = read_until(&mut child, "# revocations by kind");
    let _guard = Running(child);
    let text = lines.join("\n");
    let token = lines
        .iter()
        .find_map(|l| l.strip_prefix("TOKEN="))
        .expect("demo prints TOKEN=")
        .to_string();
    let base = text
        .split("proxy on http://")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .expect("demo prints its address");
    let addr: SocketAddr = base.parse().unwrap();
    // The proxy may still be binding: wait for it within a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "demo proxy never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = get(addr, "/hello", Some(&token)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("\"x-auth-subject\":\"alice\""),
        "{}",
        r.body
    );
    let r = post(addr, "/logout", &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("revocation-status"), Some("stored"));
    assert_eq!(get(addr, "/hello", Some(&token)).await.status, 401);

    // The admin API, as the printed CLI lines use it.
    let value = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("demo prints {prefix}"))
            .to_string()
    };
    let bob = value("BOB=");
    let admin_token = value("export REVOKE_PROXY_ADMIN_TOKEN=");
    let admin = text
        .split("admin API on ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .expect("demo prints its admin address")
        .to_string();
    assert_eq!(get(addr, "/hello", Some(&bob)).await.status, 200);
    let args = ["purge", "--admin", admin.as_str(), "--sub", "bob"].map(str::to_string);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        admin_cli(&args, Some(&admin_token))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(get(addr, "/hello", Some(&bob)).await.status, 401);
}

/// Runs `revoke-proxy <args>` as an admin API client; returns (exit code, stdout, stderr).
fn admin_cli(args: &[&str], admin_token: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("REVOKE_PROXY_ADMIN_URL");
    match admin_token {
        Some(t) => cmd.env("REVOKE_PROXY_ADMIN_TOKEN", t),
        None => cmd.env_remove("REVOKE_PROXY_ADMIN_TOKEN"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn revoke_purge_and_status_commands_talk_to_the_admin_api_and_are_audited() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin_token = "cli-admin-token-0123456789";
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret: {SECRET}\nadmin:\n  listen: 127.0.0.1:0\n  token: {admin_token}\nlog:\n  format: json\n  level: info\n",
        up.url()
    );
    let (_proxy, log, addr, admin) = start_logged(dir.path(), &yaml);
    let admin_url = format!("http://{admin}");
    let admin = admin_url.as_str();

    let c = claims("alice");
    let token = hs256(&c);
    let jwt_file = dir.path().join("token.jwt");
    std::fs::write(&jwt_file, &token).unwrap();
    let jwt_path = jwt_file.to_str().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{admin_token}\n")).unwrap();
    let token_path = token_file.to_str().unwrap();

    assert_eq!(get(addr, "/api", Some(&token)).await.status, 200);
    let (code, out, err) = admin_cli(
        &[
            "revoke",
            "--admin",
            admin,
            "--token-file",
            token_path,
            "--jwt-file",
            jwt_path,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"status\":\"stored\""), "{out}");
    assert_eq!(get(addr, "/api", Some(&token)).await.status, 401);

    let (code, out, _) = admin_cli(
        &["status", "--admin", admin, "--jwt-file", jwt_path],
        Some(admin_token),
    );
    assert_eq!(
        (code, out.trim()),
        (0, r#"{"reason":"token","revoked":true}"#)
    );
    let (code, out, _) = admin_cli(
        &[
            "revoke",
            "--admin",
            admin,
            "--sub",
            "bob",
            "--jti",
            "j9",
            "--lifetime",
            "600",
        ],
        Some(admin_token),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = admin_cli(
        &["status", "--admin", admin, "--sub", "bob", "--jti", "j9"],
        Some(admin_token),
    );
    assert!(code == 0 && out.contains("\"revoked\":true"), "{out}");
    let (code, out, _) = admin_cli(
        &["purge", "--admin", admin, "--sub", "carol"],
        Some(admin_token),
    );
    assert!(code == 0 && out.contains("\"kind\":\"subject\""), "{out}");

    // Clear errors and exit codes.
    let (code, _, err) = admin_cli(&["purge", "--admin", admin, "--all"], Some("wrong-token"));
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("admin token refused"), "{err}");
    let (code, _, err) = admin_cli(&["purge", "--admin", admin, "--all"], None);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("REVOKE_PROXY_ADMIN_TOKEN"), "{err}");
    let (code, _, err) = admin_cli(
        &[
            "revoke",
            "--admin",
            admin,
            "--sub",
            "x",
            "--jti",
            "y",
            "--lifetime",
            "0",
        ],
        Some(admin_token),
    );
    assert_ne!(code, 0, "{err}");
    let (code, _, err) = admin_cli(
        &["status", "--admin", admin, "--jwt", "junk"],
        Some(admin_token),
    );
    assert_eq!(code, 65, "{err}");
    let dead = format!("http://127.0.0.1:{}", support::servers::free_port());
    let (code, _, err) = admin_cli(&["purge", "--admin", &dead, "--all"], Some(admin_token));
    assert_eq!(code, 69, "{err}");
    for sub in ["revoke", "purge", "status"] {
        let (code, out, _) = admin_cli(&[sub, "--help"], None);
        assert_eq!(code, 0);
        assert!(
            out.contains("Examples:") && out.contains(&format!("revoke-proxy {sub}")),
            "{out}"
        );
    }

    // Audit lines: who (remote address), what (kind, subject); never a token.
    let text = wait_for_log(&log, "\"subject\":\"carol\"");
    let _ = text;
    let logged = std::fs::read_to_string(&log).unwrap();
    let audits: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("Admin revocation"))
        .collect();
    assert_eq!(audits.len(), 3, "{logged}");
    for line in &audits {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        assert!(v["kind"].is_string() && v["subject"].is_string(), "{line}");
    }
    assert!(!logged.contains(&token), "a token reached the log");
    assert!(
        !logged.contains(admin_token),
        "the admin token reached the log"
    );
}

/// Waits (bounded) until a line of the log file contains `needle`; returns it.
fn wait_for_log(path: &Path, needle: &str) -> String {
    wait_for_log_all(path, &[needle])
}

/// Waits (bounded) until one log line contains every needle; returns it.
fn wait_for_log_all(path: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "never logged {needles:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the binary with `yaml`, its stdout going to a log file; returns the
/// process, the log path and the "Proxy started" line.
fn spawn_logged(dir: &Path, yaml: &str) -> (Running, PathBuf, String) {
    let config = dir.join("proxy.yaml");
    std::fs::write(&config, yaml).unwrap();
    let log = dir.join("proxy.log");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let running = Running(child);
    let started = wait_for_log(&log, "Proxy started");
    (running, log, started)
}

/// [`spawn_logged`] for a config that logs JSON lines; returns the process,
/// the log path, the proxy address and the admin address.
fn start_logged(dir: &Path, yaml: &str) -> (Running, PathBuf, SocketAddr, SocketAddr) {
    let (running, log, started) = spawn_logged(dir, yaml);
    let v: serde_json::Value = serde_json::from_str(&started).unwrap();
    (
        running,
        log,
        v["listen"].as_str().unwrap().parse().unwrap(),
        v["admin"].as_str().unwrap().parse().unwrap(),
    )
}

#[tokio::test]
async fn sigterm_turns_unready_stops_accepting_drains_and_exits_0() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret: {SECRET}\ntimeouts:\n  shutdown_grace: 10s\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n",
        up.url()
    );
    let (mut proxy, log, addr, admin) = start_logged(dir.path(), &yaml);
    let token = hs256(&claims("alice"));
    assert_eq!(get(admin, "/readyz", None).await.status, 200);
    let t = token.clone();
    let in_flight = tokio::spawn(async move { get(addr, "/slow/1500", Some(&t)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &proxy.0.id().to_string()])
        .status();
    wait_for_log(&log, "no longer ready");
    assert_eq!(
        get(admin, "/readyz", None).await.status,
        503,
        "unready while draining"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener no longer accepts"
    );
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the in-flight request finished");
    let status = tokio::task::spawn_blocking(move || proxy.0.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "within the grace period"
    );
    // Logs are written by a background thread; what was logged up to the
    // exit must still reach the file.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().last().unwrap_or("").contains("Stopped"),
        "last line logged before exit is written: {text}"
    );
}

#[tokio::test]
async fn text_logs_to_a_file_are_plain_lines() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret: {SECRET}\nlog:\n  format: text\n  level: info\n",
        up.url()
    );
    let (_proxy, log, started) = spawn_logged(dir.path(), &yaml);
    let addr: SocketAddr = started
        .split_whitespace()
        .find_map(|f| f.strip_prefix("listen="))
        .expect("listen= on the start line")
        .parse()
        .unwrap();
    let token = hs256(&claims("alice"));
    for i in 0..200 {
        let path = format!("/api/{i}");
        assert_eq!(get(addr, &path, Some(&token)).await.status, 200);
    }
    let last = wait_for_log(&log, "path=/api/199 ");
    assert!(
        last.contains("INFO Request method=GET path=/api/199 status=200 outcome=\"ok\" subject=\"alice\" client=127.0.0.1 request_id=\"")
            && last.contains(" duration_us="),
        "{last}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "no terminal colour codes in a file"
    );
    // Lines of requests served by different worker threads may swap places
    // (a line is written once its answer is out); each is whole and present once.
    let mut paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|f| f.starts_with("path=")))
        .collect();
    paths.sort_unstable();
    let mut want: Vec<String> = (0..200).map(|i| format!("path=/api/{i}")).collect();
    want.sort_unstable();
    assert_eq!(paths, want, "one whole line per request");
    assert!(!text.contains(&token), "no token in the log");
}

#[tokio::test]
async fn access_lines_carry_the_outcome_and_never_a_secret() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret: {SECRET}\n  token_from:\n    - header: Authorization\n    - cookie: access_token\n    - query: access_token\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n",
        up.url()
    );
    let (_proxy, log, addr, admin) = start_logged(dir.path(), &yaml);
    let token = hs256(&claims("alice"));
    assert_eq!(get(addr, "/api/one", Some(&token)).await.status, 200);
    let cookie = format!("access_token={token}; theme=dark-cookie-value");
    assert_eq!(
        send(addr, "GET", "/api/two", &[("cookie", &cookie)], "")
            .await
            .status,
        200
    );
    assert_eq!(
        get(addr, &format!("/api/three?access_token={token}&q=1"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        get(addr, "/api/four", Some("not.a.token")).await.status,
        401
    );
    assert_eq!(get(addr, "/api/five", None).await.status, 401);
    wait_for_log(&log, "/api/five");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "Request")
        .collect();
    assert_eq!(lines.len(), 5, "one access line per request: {text}");
    let expect = [
        ("/api/one", 200, "ok", "alice"),
        ("/api/two", 200, "ok", "alice"),
        ("/api/three", 200, "ok", "alice"),
        ("/api/four", 401, "invalid", "-"),
        ("/api/five", 401, "missing", "-"),
    ];
    // A line is written once its response is out, so two requests in a row
    // may log in either order: each line is matched by its path.
    for (path, status, outcome, subject) in expect {
        let v = lines
            .iter()
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("no line with path {path} (no query string): {text}"));
        assert_eq!(v["method"], "GET");
        assert_eq!(v["status"], status);
        assert_eq!(v["outcome"], outcome);
        assert_eq!(v["subject"], subject);
        assert!(v["duration_us"].is_u64(), "{v}");
    }
    for secret in [token.as_str(), "dark-cookie-value", SECRET, "not.a.token"] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
    let metrics = get(admin, "/metrics", None).await.body;
    for want in [
        "revoke_proxy_requests_total{outcome=\"ok\"} 3",
        "revoke_proxy_requests_total{outcome=\"invalid\"} 1",
        "revoke_proxy_requests_total{outcome=\"missing\"} 1",
        "revoke_proxy_upstream_latency_seconds_count 3",
        "revoke_proxy_verify_latency_seconds_bucket{le=\"+Inf\"} 4",
        "revoke_proxy_verify_cache_hits_total 2",
        "revoke_proxy_store_available 1",
    ] {
        assert!(metrics.contains(want), "{want} missing from\n{metrics}");
    }
}

/// A denial's access line says why (a fixed reason), whose token it was
/// when it verified, where the request came from and its request id; the
/// id the upstream receives is the one logged (kept when the client sent a
/// usable one, made up otherwise), on the fast path and on hyper (HTTP/1.0).
/// Revocation lines carry kind, subject and token id, never the token.
#[tokio::test]
async fn denial_lines_carry_reason_subject_client_and_request_id() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret: {SECRET}\nroutes:\n  - path: /logout\n    action: revoke\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n",
        up.url()
    );
    let (_proxy, log, addr, _admin) = start_logged(dir.path(), &yaml);
    let revoked = {
        let mut c = claims("carol");
        c["jti"] = serde_json::json!("carol-token-1");
        hs256(&c)
    };
    assert_eq!(post(addr, "/logout", &revoked).await.status, 200);
    let logout_id = up.last().headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut expired = claims("dave");
    expired["exp"] = serde_json::json!(now() - 3600);
    expired["iat"] = serde_json::json!(now() - 7200);
    let expired = hs256(&expired);
    let forged = forge(
        &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        &claims("erin"),
        b"another-secret-entirely-0123456789",
    );
    // (path, token, client's X-Request-Id, status, reason, subject)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, u16, &'a str, &'a str);
    let cases: [Case; 5] = [
        (
            "/d/revoked",
            &revoked,
            Some("trace-77"),
            401,
            "revoked:token",
            "carol",
        ),
        ("/d/expired", &expired, None, 401, "expired", "-"),
        (
            "/d/forged",
            &forged,
            Some("bad\"id"),
            401,
            "bad_signature",
            "-",
        ),
        ("/d/missing", "", None, 401, "missing", "-"),
        ("/d/ok", &hs256(&claims("frank")), None, 200, "", "frank"),
    ];
    for http10 in [false, true] {
        for (path, token, rid, status, _, _) in cases {
            let version = if http10 { "1.0" } else { "1.1" };
            let mut req = format!(
                "GET {path}/{version} HTTP/{version}\r\nHost: app\r\nConnection: close\r\n"
            );
            if !token.is_empty() {
                req.push_str(&format!("Authorization: Bearer {token}\r\n"));
            }
            if let Some(r) = rid {
                req.push_str(&format!("X-Request-Id: {r}\r\n"));
            }
            req.push_str("\r\n");
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
                .await
                .expect("answer")
                .unwrap();
            let answer = String::from_utf8_lossy(&answer).to_string();
            assert_eq!(
                answer.split(' ').nth(1),
                Some(status.to_string().as_str()),
                "{path} over {version}: {answer}"
            );
        }
    }
    wait_for_log(&log, "/d/ok/1.0");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let upstream_ids: Vec<String> = up
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.target.starts_with("/d/ok"))
        .map(|r| r.headers["x-request-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        upstream_ids.len(),
        2,
        "one request id per forwarded request"
    );
    for version in ["1.1", "1.0"] {
        for (path, _, rid, status, reason, subject) in cases {
            let path = format!("{path}/{version}");
            let v = lines
                .iter()
                .find(|v| v["message"] == "Request" && v["path"] == path.as_str())
                .unwrap_or_else(|| panic!("no access line for {path}: {text}"));
            assert_eq!(v["status"], status, "{v}");
            assert_eq!(v["subject"], subject, "{path}: {v}");
            assert_eq!(v["client"], "127.0.0.1", "{v}");
            if reason.is_empty() {
                assert!(v.get("reason").is_none(), "no reason on a success: {v}");
            } else {
                assert_eq!(v["reason"], reason, "{path}: {v}");
            }
            let id = v["request_id"].as_str().unwrap_or_else(|| panic!("{v}"));
            match rid {
                Some("trace-77") => assert_eq!(id, "trace-77", "a usable id is kept"),
                _ => {
                    assert_eq!(id.len(), 32, "{v}");
                    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
                }
            }
            if status == 200 {
                assert!(
                    upstream_ids.iter().any(|u| u == id),
                    "{id} not the upstream's"
                );
            }
        }
    }
    let mut ids: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["request_id"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len() + 1,
        n,
        "ids are unique but the client's trace-77 (sent twice)"
    );
    let logout = lines
        .iter()
        .find(|v| v["message"] == "Request" && v["path"] == "/logout")
        .unwrap();
    assert_eq!(logout["request_id"], logout_id.as_str());
    let applied = lines
        .iter()
        .find(|v| v["message"] == "Revocation applied")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(applied["kind"], "token", "{applied}");
    assert_eq!(applied["subject"], "carol");
    assert_eq!(applied["token_id"], "carol-token-1");
    assert_eq!(applied["action"], "revoke", "plain words, not Debug casing");
    for secret in [revoked.as_str(), expired.as_str(), forged.as_str(), SECRET] {
        assert!(!text.contains(secret), "a token or secret reached the log");
    }
}

/// One request on an open keep-alive connection; returns the status.
async fn on_connection(s: &mut tokio::net::TcpStream, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("answer")
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len {
                return text.split(' ').nth(1).unwrap().parse().unwrap();
            }
        }
    }
}

#[tokio::test]
async fn hot_reload_swaps_routes_keys_and_headers_and_refuses_bad_files() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let new_secret = "rotated-secret-0123456789-0123456789-xyz";
    let base = |secret: &str, header: &str, public: bool, listen: &str| {
        format!(
            "listen: {listen}\nupstream: {}\njwt:\n  secret: {secret}\nroutes:\n{}  - path: /logout\n    methods: [POST]\n    action: revoke\nforward:\n  claims_to_headers:\n    sub: {header}\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n  level: info\n",
            up.url(),
            if public { "  - path: /static/*\n    auth: none\n" } else { "" }
        )
    };
    let (proxy, log, addr, _admin) = start_logged(
        dir.path(),
        &base(SECRET, "X-Auth-Subject", false, "127.0.0.1:0"),
    );
    let config = dir.path().join("proxy.yaml");
    let old_token = hs256(&claims("alice"));
    let new_token = sign(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(new_secret.as_bytes()),
        &claims("alice"),
    );
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(on_connection(&mut kept, "/api", &old_token).await, 200);
    assert_eq!(get(addr, "/static/app.js", None).await.status, 401);

    // New secret, new route, new header; a listen change needs a restart.
    std::fs::write(&config, base(new_secret, "X-User", true, "127.0.0.1:1")).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &proxy.0.id().to_string()])
        .status();
    let line = wait_for_log(&log, "Configuration reloaded");
    assert!(line.contains("SIGHUP") && line.contains("listen"), "{line}");
    assert_eq!(
        get(addr, "/static/app.js", None).await.status,
        200,
        "new public route"
    );
    assert_eq!(
        get(addr, "/api", Some(&old_token)).await.status,
        401,
        "old key gone"
    );
    assert_eq!(
        get(addr, "/api", Some(&new_token)).await.status,
        200,
        "new key"
    );
    let seen = up.last();
    assert_eq!(seen.headers.get("x-user").unwrap(), "alice");
    assert!(seen.headers.get("x-auth-subject").is_none());
    assert_eq!(
        on_connection(&mut kept, "/api", &new_token).await,
        200,
        "a connection opened before the reload still serves"
    );

    // An invalid file is refused with its problems; the old config serves on.
    std::fs::write(
        &config,
        base(new_secret, "X-User", true, "127.0.0.1:0").replace("routes:", "routez:"),
    )
    .unwrap();
    let line = wait_for_log(&log, "New configuration refused");
    assert!(line.contains("routez"), "{line}");
    let refused: serde_json::Value = serde_json::from_str(&line).unwrap();
    let problems = refused["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("problems are a JSON array, not a string of JSON: {line}"));
    assert!(problems
        .iter()
        .any(|p| p.as_str().is_some_and(|p| p.contains("routez"))));
    assert_eq!(get(addr, "/static/app.js", None).await.status, 200);

    // A valid change is picked up from the file alone, without a signal.
    // The log level changes too: info → warn silences the access lines.
    std::fs::write(
        &config,
        base(new_secret, "X-User", false, "127.0.0.1:0").replace("level: info", "level: warn"),
    )
    .unwrap();
    wait_for_log_all(&log, &["Configuration reloaded", "config file changed"]);
    let access_lines = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"message\":\"Request\""))
            .count()
    };
    for _ in 0..100 {
        if get(addr, "/static/app.js", None).await.status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = access_lines();
    assert_eq!(get(addr, "/static/app.js", None).await.status, 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(access_lines(), before, "no access line at level warn");
    drop(proxy);
}

/// A response the fast path cannot finish (the upstream closes in the middle
/// of its body) still gets its access line: the status already sent and
/// the outcome `upstream_error`.
#[tokio::test]
async fn an_aborted_fast_path_response_is_logged() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
                    .await;
                // Closed with 90 bytes of the body never sent.
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: http://{up_addr}\njwt:\n  secret: {SECRET}\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n"
    );
    let (_proxy, log, addr, _admin) = start_logged(dir.path(), &yaml);
    let token = hs256(&claims("carl"));
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /cut HTTP/1.1\r\nhost: app\r\nauthorization: Bearer {token}\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the proxy closed the connection");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(got.len() < 100, "the body was cut short: {}", got.len());
    let text = wait_for_log(&log, "/cut");
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "Request" && v["path"] == "/cut")
        .unwrap_or_else(|| panic!("no access line for the aborted response: {text}"));
    assert_eq!(line["status"], 200);
    assert_eq!(line["outcome"], "upstream_error");
    assert_eq!(line["subject"], "carl");
}

/// Usage mistakes exit 64 and messages point at the fix: clap's own
/// errors included, an unreachable admin API names its address and
/// `admin.listen`, and the proxy port is not taken for an admin listener.
#[tokio::test]
async fn usage_errors_exit_64_and_messages_point_at_the_fix() {
    fn run(args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(BIN)
            .args(args)
            .env(
                "REVOKE_PROXY_ADMIN_TOKEN",
                "admin-token-for-tests-0123456789",
            )
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    for args in [
        &["--bogus"][..],
        &["purge", "--sub", "a", "--all"],
        &["run"],
        &["check"],
        &["revoke"],
    ] {
        assert_eq!(run(args).0, Some(64), "{args:?}");
    }
    let (code, err) = run(&["purge"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("--all"), "{err}");

    // Nothing listens there: exit 69, the address and admin.listen named.
    let port = support::servers::free_port();
    let admin = format!("http://127.0.0.1:{port}");
    let (code, err) = run(&["purge", "--admin", &admin, "--sub", "a"]);
    assert_eq!(code, Some(69), "{err}");
    assert!(
        err.contains(&admin) && err.contains("admin.listen"),
        "{err}"
    );

    // The proxy's own port answers, but it is no admin listener.
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(BASIC, &up.url(), &[]).await;
    let at = format!("http://{}", proxy.addr);
    let (code, err) =
        tokio::task::spawn_blocking(move || run(&["purge", "--admin", &at, "--sub", "a"]))
            .await
            .unwrap();
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("not an admin listener"), "{err}");
    assert!(proxy.app.revocations.is_empty(), "nothing was revoked");
    proxy.stop().await;
}

/// A rotated `jwt.secret_file` takes effect without a restart or a signal:
/// the file is swapped the way a Kubernetes Secret volume swaps it (a new
/// directory behind the `..data` symlink), the reloader sees the key file
/// change, and tokens signed with the new secret pass while the old ones
/// are refused.
#[cfg(unix)]
#[tokio::test]
async fn a_rotated_secret_file_is_picked_up_without_a_restart() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let old = "the-first-secret-of-32-bytes-0123456";
    let new = "the-second-secret-of-32-bytes-65432";
    let mount = |version: &str, secret: &str| {
        let data = secrets.join(format!("..{version}"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("jwt-secret"), secret).unwrap();
        let tmp = secrets.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
        std::fs::rename(&tmp, secrets.join("..data")).unwrap();
    };
    mount("v1", old);
    std::os::unix::fs::symlink("..data/jwt-secret", secrets.join("jwt-secret")).unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstream: {}\njwt:\n  secret_file: {}\nadmin:\n  listen: 127.0.0.1:0\nlog:\n  format: json\n",
        up.url(),
        secrets.join("jwt-secret").display()
    );
    let (_proxy, log, addr, _admin) = start_logged(dir.path(), &yaml);
    let signed = |secret: &str| {
        encode(
            &Header::default(),
            &claims("alice"),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    assert_eq!(get(addr, "/api", Some(&signed(old))).await.status, 200);
    assert_eq!(get(addr, "/api", Some(&signed(new))).await.status, 401);
    mount("v2", new);
    wait_for_log(&log, "key file changed");
    assert_eq!(get(addr, "/api", Some(&signed(new))).await.status, 200);
    assert_eq!(get(addr, "/api", Some(&signed(old))).await.status, 401);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(old) && !text.contains(new),
        "a secret reached the log"
    );
}

#[test]
fn a_reload_that_changes_no_verification_rule_keeps_the_token_cache() {
    use revoke_proxy::auth::Verifier;
    let build = |yaml: &str| {
        let s = parse_settings(yaml, "http://127.0.0.1:1", &[]);
        Verifier::new(&s.jwt, &s.revocation, &s.forward).unwrap()
    };
    let token = hs256(&claims("alice"));
    let now = now();
    let old = build(BASIC);
    old.verify(&token, now).unwrap();
    old.verify(&token, now).unwrap();
    assert_eq!(old.cache_hits(), 1);

    // The same rules (routes or log level may differ): the cache carries over.
    let mut same = build(&BASIC.replace("level: warn", "level: debug"));
    same.keep_cache_of(&old);
    same.verify(&token, now).unwrap();
    assert_eq!(same.cache_hits(), 2, "verified from the carried-over cache");

    // Another secret (or claim rule): a fresh cache, so the old token is
    // checked against the new key and refused.
    let other = "another-secret-0123456789-0123456789-xyz";
    let mut rotated = build(&BASIC.replace("${SECRET}", other));
    rotated.keep_cache_of(&same);
    assert!(rotated.verify(&token, now).is_err(), "old key gone");
    assert_eq!(rotated.cache_hits(), 0);
    let mut renamed = build(&BASIC.replace("sub: X-Auth-Subject", "sub: X-User"));
    renamed.keep_cache_of(&same);
    renamed.verify(&token, now).unwrap();
    assert_eq!(renamed.cache_hits(), 0, "forwarded claims changed");
}
