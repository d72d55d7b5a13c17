//! `deploy/`: every Kubernetes manifest validates against the Kubernetes
//! schemas offline (the `kubernetes-validate` package from PyPI, installed by
//! `scripts/test.sh`), the redis overlay's patches apply to the base and the
//! result validates too, every embedded revoke-proxy config passes
//! `revoke-proxy check`, and the Dockerfile keeps its promises.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_revoke-proxy");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["kubernetes/base", "kubernetes/redis"] {
        for entry in std::fs::read_dir(deploy().join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn validate(files: &[PathBuf]) {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .args(files)
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named kubernetes_validate"),
        "kubernetes-validate is missing: `pip install kubernetes-validate` (scripts/test.sh does it)"
    );
    assert!(out.status.success(), "manifests do not validate:\n{text}");
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    validate(&files);
}

/// Applies the JSON6902 operations this repo uses (`replace`, `add`).
fn apply_patch(doc: &mut Value, ops: &Value) {
    for op in ops.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        let value = op["value"].clone();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let target = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("patch path {path} does not exist in the base"));
        match (op["op"].as_str().unwrap(), target) {
            ("add", Value::Array(a)) if last == "-" => a.push(value),
            ("add" | "replace", Value::Object(o)) => {
                if op["op"] == "replace" {
                    assert!(o.contains_key(last), "replace of a missing {path}");
                }
                o.insert(last.to_string(), value);
            }
            (kind, _) => panic!("unsupported patch {kind} {path}"),
        }
    }
}

#[test]
fn the_redis_overlay_applies_to_the_base_and_still_validates() {
    let k = deploy().join("kubernetes");
    for dir in ["base", "redis"] {
        let kust = &yaml_docs(&k.join(dir).join("kustomization.yaml"))[0];
        for r in kust["resources"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            assert!(k.join(dir).join(r).exists(), "{dir}: resource {r} missing");
        }
    }
    let overlay = &yaml_docs(&k.join("redis/kustomization.yaml"))[0];
    let mut deployment = yaml_docs(&k.join("base/deployment.yaml")).remove(0);
    for p in overlay["patches"].as_array().unwrap() {
        if let Some(path) = p["path"].as_str() {
            assert!(k.join("redis").join(path).exists(), "patch {path} missing");
            continue;
        }
        assert_eq!(p["target"]["kind"], "Deployment");
        let ops: serde_yaml::Value = serde_yaml::from_str(p["patch"].as_str().unwrap()).unwrap();
        apply_patch(&mut deployment, &serde_json::to_value(ops).unwrap());
    }
    let sidecar = &deployment["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(
        sidecar["name"], "revoke-proxy",
        "patches address the sidecar"
    );
    assert!(sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "REDIS_PASSWORD"));
    assert_eq!(deployment["spec"]["replicas"], 3);
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("deployment.yaml");
    std::fs::write(&rendered, serde_yaml::to_string(&deployment).unwrap()).unwrap();
    validate(&[rendered]);
}

#[test]
fn every_embedded_config_passes_revoke_proxy_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in manifests() {
        for doc in yaml_docs(&file) {
            let Some(config) = doc["data"]["config.yaml"].as_str() else {
                continue;
            };
            let path = dir.path().join(format!("config-{checked}.yaml"));
            // The pod mounts a volume at /var/lib/revoke-proxy; here it is a
            // temporary directory (`check` tests that it exists).
            let config = config.replace("/var/lib/revoke-proxy", &dir.path().display().to_string());
            std::fs::write(&path, config).unwrap();
            let out = Command::new(BIN)
                .args(["check", "--config"])
                .arg(&path)
                .env("JWT_SECRET", "a-jwt-secret-of-reasonable-length-0123")
                .env("REVOKE_PROXY_ADMIN_TOKEN", "an-admin-token-0123456789")
                .env("REDIS_PASSWORD", "redis-password")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(!shown.contains("redis-password"), "password shown: {shown}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "base and redis configs");
}

#[test]
fn the_sidecar_is_the_only_way_in_and_runs_locked_down() {
    let k = deploy().join("kubernetes/base");
    let service = &yaml_docs(&k.join("service.yaml"))[0];
    let deployment = &yaml_docs(&k.join("deployment.yaml"))[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let sidecar = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "revoke-proxy")
        .unwrap();
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "one port, the proxy's");
    assert_eq!(ports[0]["targetPort"], "http");
    assert!(sidecar["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "http" && p["containerPort"] == 8080));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(sidecar[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/readyz");
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(sidecar["resources"]["limits"]["memory"].is_string());
    assert!(sidecar["resources"]["requests"]["cpu"].is_string());
}

#[test]
fn the_dockerfile_is_multi_stage_distroless_and_non_root() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "build and runtime stages");
    assert!(froms[1].contains("distroless"), "{}", froms[1]);
    assert!(text.contains("USER 65532:65532"));
    assert!(text.contains("EXPOSE 8080 9901"));
    assert!(text.contains("--locked"));
    // Every path the build copies exists in the repository.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root.join(src).exists(), "COPY source {src} missing");
        }
    }
}
