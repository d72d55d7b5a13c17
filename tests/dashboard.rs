//! `deploy/grafana/revoke-proxy.json`: a dashboard Grafana can import, whose
//! every query names only metrics the proxy exports — checked against a
//! live `/metrics` of a redis replica with intake and status lists on.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use support::servers::Redis;
use support::*;

fn dashboard() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/revoke-proxy.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

/// The metric names an expression uses.
fn names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("revoke_proxy_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn every_dashboard_query_names_an_exported_metric() {
    let d = dashboard();
    assert_eq!(d["uid"], "revoke-proxy");
    let panels = d["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "outcome",
        "Denied",
        "Upstream latency",
        "verification latency",
        "Revocations written",
        "Store available",
        "Pending",
        "Propagation lag",
        "signals",
        "status list",
    ] {
        assert!(
            titles
                .iter()
                .any(|t| t.to_lowercase().contains(&wanted.to_lowercase())),
            "no panel about {wanted}: {titles:?}"
        );
    }

    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = format!(
        "{BASIC}revocation:\n  store:\n    type: redis\n    url: {}\nintake:\n  issuers:\n    - issuer: https://idp.test\n      public_key_file: ${{KEYS}}/rsa.pub\n      audience: [app]\n  backchannel_logout:\n    path: /bcl\n  status_list:\n    enabled: true\n",
        redis.url()
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    let body = get(proxy.admin.expect("admin"), "/metrics", None)
        .await
        .body;
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    assert!(exported.len() > 15, "{body}");

    let mut used = 0;
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            for name in names(expr) {
                used += 1;
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| exported.contains(*f)))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(family),
                    "panel {:?} uses {name}, which /metrics does not export",
                    p["title"]
                );
            }
        }
    }
    assert!(
        used >= panels.len(),
        "every panel queries a revoke_proxy metric"
    );
    proxy.stop().await;
}
