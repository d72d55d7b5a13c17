//! Third-party peers written in Node.js (`tests/peers/*`: the npm
//! `oidc-provider`, `@sd-jwt/jwt-status-list`), started on free loopback
//! ports and stopped when dropped. `scripts/test.sh` installs their
//! packages (`npm ci`) and Node.js when missing.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One running peer and the JSON line it printed once listening.
pub struct NodePeer {
    child: Child,
    pub info: Value,
}

impl NodePeer {
    /// Runs `tests/peers/<dir>/<script>` with `env`; waits (bounded: 30 s)
    /// for its one start line on stdout.
    pub fn start(dir: &str, script: &str, package: &str, env: &[(&str, String)]) -> NodePeer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers")
            .join(dir);
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "{package} is not installed; run `bash scripts/test.sh` (or `npm ci --prefix {}`)",
            dir.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg(dir.join(script))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("node runs (scripts/test.sh installs Node.js when missing)");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("{script} printed no start line within 30 s")
            });
        let info: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("{script} start line {line:?}: {e}")
        });
        NodePeer { child, info }
    }

    /// A string member of the start line.
    pub fn get(&self, name: &str) -> String {
        self.info[name]
            .as_str()
            .unwrap_or_else(|| panic!("start line lacks {name}: {}", self.info))
            .to_string()
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs JSON to a peer's control endpoint (`base` is `http://127.0.0.1:PORT`);
/// the answer must be 200.
pub async fn call(base: &str, path: &str, body: &Value) -> Value {
    let addr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("a peer listens on http://127.0.0.1:PORT");
    let r = super::send(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}
