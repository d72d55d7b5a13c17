//! `/metrics` and `deploy/grafana/revoke-proxy.json`: the exposition, read
//! by the Prometheus project's own parser, has the families, types, names
//! and bounded labels the README lists; the dashboard Grafana imports
//! queries only metrics the proxy exports — both checked against a live
//! `/metrics` of a redis replica with intake and status lists on.

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

/// A redis replica with intake and status lists on: every family exported.
async fn observed_proxy() -> (Redis, TestUpstream, TestProxy) {
    let redis = Redis::start();
    let up = TestUpstream::start().await;
    let yaml = format!(
        "{BASIC}revocation:\n  store:\n    type: redis\n    url: {}\nintake:\n  issuers:\n    - issuer: https://idp.test\n      public_key_file: ${{KEYS}}/rsa.pub\n      audience: [app]\n  backchannel_logout:\n    path: /bcl\n  status_list:\n    enabled: true\n",
        redis.url()
    );
    let proxy = TestProxy::start(&yaml, &up.url(), &[]).await;
    (redis, up, proxy)
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

    let (_redis, _up, proxy) = observed_proxy().await;
    let body = get(proxy.admin.expect("admin"), "/metrics", None)
        .await
        .body;
    // The series names each family's type gives (OpenMetrics: a counter
    // family `x` has samples `x_total`).
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .flat_map(|l| {
            let mut words = l.split(' ');
            let name = words.next().unwrap_or_default().to_string();
            match words.next() {
                Some("counter") => vec![format!("{name}_total")],
                _ => vec![name],
            }
        })
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

/// Every family `/metrics` exports, with its OpenMetrics type.
const FAMILIES: [(&str, &str); 20] = [
    ("revoke_proxy_requests", "counter"),
    ("revoke_proxy_revocations", "counter"),
    ("revoke_proxy_intake_signals", "counter"),
    (
        "revoke_proxy_intake_poll_last_success_timestamp_seconds",
        "gauge",
    ),
    ("revoke_proxy_intake_poll_errors", "counter"),
    ("revoke_proxy_status_list_lookups", "counter"),
    ("revoke_proxy_upstream_latency_seconds", "histogram"),
    ("revoke_proxy_verify_latency_seconds", "histogram"),
    ("revoke_proxy_revocations_live", "gauge"),
    ("revoke_proxy_revocations_pending", "gauge"),
    ("revoke_proxy_store_errors", "counter"),
    ("revoke_proxy_store_sync_lag_seconds", "gauge"),
    ("revoke_proxy_store_available", "gauge"),
    ("revoke_proxy_store_log_position_timestamp_seconds", "gauge"),
    ("revoke_proxy_store_log_entries", "counter"),
    ("revoke_proxy_store_full_loads", "counter"),
    ("revoke_proxy_store_given_back_entries", "counter"),
    ("revoke_proxy_propagation_lag_seconds", "histogram"),
    ("revoke_proxy_verify_cache_hits", "counter"),
    ("revoke_proxy_log_lines_dropped", "counter"),
];

/// The values each label may take: fixed sets, so no request, token or
/// signal can add a series.
fn allowed(label: &str, value: &str) -> bool {
    let set: &[&str] = match label {
        "outcome" => &[
            "ok",
            "missing",
            "invalid",
            "revoked",
            "store_unavailable",
            "upstream_error",
        ],
        "kind" => &["token", "subject", "global", "session"],
        "endpoint" => &["backchannel_logout", "ssf_push", "ssf_poll"],
        "result" => &[
            "applied",
            "replayed",
            "rejected",
            "cache_hit",
            "fetched",
            "failed",
        ],
        "reason" => &[
            "",
            "invalid_issuer",
            "invalid_audience",
            "invalid_key",
            "invalid_request",
            "keys_unavailable",
            "authentication_failed",
            "start",
            "new_epoch",
            "log_behind",
            "trimmed",
        ],
        "source" => &["snapshot", "keys", "recent", "copy"],
        "le" => return value == "+Inf" || value.parse::<f64>().is_ok(),
        _ => &[],
    };
    set.contains(&value)
}

/// `/metrics` parsed by `prometheus_client.openmetrics.parser` (PyPI
/// prometheus-client, installed by scripts/test.sh): each family has its
/// type, counters' samples end in `_total`, times are `_seconds`, no label
/// value comes from input — 30 distinct bad signals and requests add no
/// series.
#[tokio::test]
async fn metrics_parse_with_the_prometheus_parser_and_labels_are_bounded() {
    let (_redis, _up, proxy) = observed_proxy().await;
    let token = hs256(&claims("alice"));
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 200);
    assert_eq!(post(proxy.addr, "/logout", &token).await.status, 200);
    assert_eq!(get(proxy.addr, "/api", Some(&token)).await.status, 401);
    for i in 0..30 {
        let junk = format!("junk-{i}.{i}.{i}");
        assert_eq!(
            get(proxy.addr, &format!("/p{i}"), Some(&junk)).await.status,
            401
        );
        let body = format!("logout_token=not-a-jwt-{i}");
        let r = send(
            proxy.addr,
            "POST",
            "/bcl",
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let scraped = get(proxy.admin.expect("admin"), "/metrics", None).await;
    assert!(
        scraped
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        scraped.headers
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &scraped.body).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\n\
             from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
             fams = text_string_to_metric_families(open(sys.argv[1]).read())\n\
             print(json.dumps([{'name': f.name, 'type': f.type, 'samples': \
             [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in f.samples]} for f in fams]))",
        )
        .arg(&file)
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "prometheus-client is missing: `pip install prometheus-client` (scripts/test.sh does it)"
    );
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {stderr}\n{}",
        scraped.body
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = BTreeSet::new();
    for f in &families {
        let name = f["name"].as_str().unwrap();
        let kind = f["type"].as_str().unwrap();
        let want = FAMILIES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not a documented family"));
        assert_eq!(kind, want.1, "{name}");
        assert!(!name.contains("_ms"), "{name}: durations are in seconds");
        seen.insert(name);
        for sample in f["samples"].as_array().unwrap() {
            let sname = sample["name"].as_str().unwrap();
            if kind == "counter" {
                assert_eq!(sname, format!("{name}_total"), "counters end in _total");
            }
            for (label, value) in sample["labels"].as_object().unwrap() {
                let value = value.as_str().unwrap();
                assert!(
                    allowed(label, value),
                    "{sname}: {label}={value:?} is not from a fixed set"
                );
            }
        }
    }
    let missing: Vec<_> = FAMILIES.iter().filter(|(n, _)| !seen.contains(n)).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
    let count = |family: &str, labels: &[(&str, &str)]| -> f64 {
        families
            .iter()
            .filter(|f| f["name"] == family)
            .flat_map(|f| f["samples"].as_array().unwrap().iter())
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(
        count("revoke_proxy_requests", &[("outcome", "invalid")]),
        30.0
    );
    assert_eq!(
        count("revoke_proxy_requests", &[("outcome", "revoked")]),
        1.0
    );
    assert_eq!(count("revoke_proxy_revocations", &[("kind", "token")]), 1.0);
    assert_eq!(
        count(
            "revoke_proxy_intake_signals",
            &[("endpoint", "backchannel_logout"), ("result", "rejected")]
        ),
        30.0
    );
    let signal_series = families
        .iter()
        .find(|f| f["name"] == "revoke_proxy_intake_signals")
        .map_or(0, |f| f["samples"].as_array().unwrap().len());
    assert_eq!(signal_series, 1, "30 distinct bad signals, one series");
    proxy.stop().await;
}
