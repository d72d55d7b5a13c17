//! Arrows point one way: each top-level module of `src/` may import only
//! the modules listed for it below (comments aside), so the tree reads as
//! the request flow — server → proxy → auth / routes / revocation, with
//! config imported by all and importing none — and has no import circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Who may import whom (modules not listed import only themselves).
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("claims", &[]),
    ("metrics", &[]),
    ("exit", &[]),
    ("tls", &[]),
    ("logging", &["config"]),
    ("routes", &["config"]),
    ("auth", &["config", "claims", "metrics"]),
    ("revocation", &["config", "claims", "metrics"]),
    ("fetch", &["auth", "tls"]),
    (
        "intake",
        &["config", "claims", "auth", "revocation", "metrics"],
    ),
    (
        "proxy",
        &[
            "config",
            "claims",
            "auth",
            "routes",
            "revocation",
            "intake",
            "metrics",
            "tls",
        ],
    ),
    ("server", &["config", "proxy"]),
    (
        "admin",
        &[
            "config",
            "claims",
            "auth",
            "revocation",
            "metrics",
            "logging",
            "exit",
        ],
    ),
    ("reload", &["config", "auth", "proxy", "logging"]),
    (
        "app",
        &[
            "config",
            "admin",
            "auth",
            "fetch",
            "intake",
            "metrics",
            "proxy",
            "reload",
            "revocation",
            "server",
            "tls",
            "exit",
        ],
    ),
    ("demo", &["config", "app", "exit", "logging", "revocation"]),
    (
        "cli",
        &["config", "admin", "app", "demo", "exit", "logging"],
    ),
];

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let set = out.entry(top.clone()).or_default();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != top && !name.is_empty() {
                    set.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn every_import_follows_an_allowed_arrow() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut wrong = Vec::new();
    for (module, deps) in imports() {
        let Some(ok) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{module}: a new top-level module; list it in ALLOWED"
            ));
            continue;
        };
        for d in deps {
            if !ok.contains(d.as_str()) {
                wrong.push(format!("{module} -> {d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the arrows: {wrong:?}");
}

#[test]
fn the_allowed_arrows_have_no_circle() {
    let graph: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    fn visit<'a>(
        n: &'a str,
        g: &BTreeMap<&'a str, &'a [&'a str]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        assert!(!path.contains(&n), "circle: {path:?} -> {n}");
        if done.contains(n) {
            return;
        }
        path.push(n);
        for d in g.get(n).copied().unwrap_or_default() {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(n);
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_decision_modules_hold_no_http_server_or_client() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack: Vec<_> = ["auth", "revocation", "config"]
        .iter()
        .map(|d| src.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for banned in [
                "hyper::",
                "hyper_util::",
                "hyper_rustls::",
                "tokio::net::TcpListener",
            ] {
                assert!(!text.contains(banned), "{} uses {banned}", path.display());
            }
        }
    }
    let routes = std::fs::read_to_string(src.join("routes.rs")).unwrap();
    assert!(!routes.contains("hyper"), "routes.rs uses hyper");
}
