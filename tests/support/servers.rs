//! Real `redis-server` and `memcached` processes for the tests, each on free
//! loopback ports in its own temporary directory, stopped when dropped.
//! `scripts/test.sh` installs the Debian packages when they are missing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to accept connections (10 s).
const START_WAIT: Duration = Duration::from_secs(10);

/// A port that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + START_WAIT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server on port {port} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server on port {port} did not start within {START_WAIT:?}");
}

fn require(binary: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!("{binary} is not installed; run `bash scripts/test.sh`, which installs it");
}

/// One `redis-server` process.
pub struct Redis {
    pub port: u16,
    /// TLS port when started with [`Redis::start_tls`].
    pub tls_port: Option<u16>,
    child: Child,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::spawn(Vec::new(), None, None)
    }

    /// A server with an append-only file fsynced on every write, so a
    /// restart keeps what it had acknowledged.
    pub fn start_persistent() -> Redis {
        let args = ["--appendonly", "yes", "--appendfsync", "always"];
        Redis::spawn(args.iter().map(|a| a.to_string()).collect(), None, None)
    }

    /// A server replicating `primary` (promote it with `REPLICAOF NO ONE`).
    pub fn start_replica_of(primary: &Redis) -> Redis {
        // Sync at once rather than after the 5 s diskless-sync delay.
        primary.cli(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        let args = vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ];
        Redis::spawn(args, None, None)
    }

    /// A TLS-only server (plain port off) with `tls` certificates.
    pub fn start_tls(tls: &TlsFiles) -> Redis {
        let args = vec![
            "--tls-cert-file".into(),
            tls.cert.display().to_string(),
            "--tls-key-file".into(),
            tls.key.display().to_string(),
            "--tls-ca-cert-file".into(),
            tls.ca.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Redis::spawn(args, Some(free_port()), None)
    }

    fn spawn(extra: Vec<String>, tls_port: Option<u16>, port: Option<u16>) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = port.unwrap_or_else(free_port);
        let mut r = Redis {
            port,
            tls_port,
            child: Command::new("true").spawn().expect("spawn true"),
            dir,
            extra,
        };
        r.child = r.launch();
        let wait = r.tls_port.unwrap_or(r.port);
        wait_for_port(wait, &mut r.child);
        r
    }

    fn launch(&self) -> Child {
        let mut cmd = Command::new(require("redis-server"));
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--protected-mode")
            .arg("no")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        match self.tls_port {
            Some(tls) => {
                cmd.arg("--port")
                    .arg("0")
                    .arg("--tls-port")
                    .arg(tls.to_string());
            }
            None => {
                cmd.arg("--port").arg(self.port.to_string());
            }
        }
        cmd.args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("not a TLS server")
        )
    }

    /// Runs `redis-cli` against this (plain) server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(require("redis-cli"))
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills every replica's change-log reader connection; returns how many.
    pub fn kill_log_readers(&self) -> usize {
        let list = self.cli(&["CLIENT", "LIST"]);
        let ids: Vec<&str> = list
            .lines()
            .filter(|l| l.contains(" name=revoke-proxy-log "))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .collect();
        for id in &ids {
            self.cli(&["CLIENT", "KILL", "ID", id]);
        }
        ids.len()
    }

    /// Sends `commands` (each a list of arguments) through `redis-cli --pipe`.
    pub fn pipe(&self, commands: &[Vec<String>]) {
        use std::io::Write as _;
        let mut resp = Vec::new();
        for c in commands {
            let _ = write!(resp, "*{}\r\n", c.len());
            for a in c {
                let _ = write!(resp, "${}\r\n{a}\r\n", a.len());
            }
        }
        let mut child = Command::new(require("redis-cli"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("--pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run redis-cli --pipe");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&resp)
            .expect("write commands");
        assert!(child.wait().expect("redis-cli --pipe").success());
    }

    /// Calls of `command` since start (`INFO commandstats`; 0 if none).
    pub fn calls(&self, command: &str) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        stats
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Every command's `(calls, usec)` summed over `INFO commandstats`.
    pub fn command_totals(&self) -> (u64, u64) {
        let stats = self.cli(&["INFO", "commandstats"]);
        let field = |l: &str, name: &str| -> u64 {
            l.split([':', ','])
                .find_map(|f| f.strip_prefix(name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        stats
            .lines()
            .filter(|l| l.starts_with("cmdstat_"))
            .fold((0, 0), |(c, u), l| {
                (c + field(l, "calls="), u + field(l, "usec="))
            })
    }

    /// SIGSTOP / SIGCONT: the server keeps its sockets but stops answering.
    pub fn pause(&self) {
        signal(&self.child, "STOP");
    }

    pub fn resume(&self) {
        signal(&self.child, "CONT");
    }

    /// Kills the server (its data is lost) and starts a new one on the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = self.launch();
        let wait = self.tls_port.unwrap_or(self.port);
        wait_for_port(wait, &mut self.child);
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        signal(&self.child, "CONT");
        self.stop();
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

/// Three masters forming a Redis Cluster on loopback.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                let bus = free_port();
                Redis::spawn(
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-port".into(),
                        bus.to_string(),
                        "--cluster-node-timeout".into(),
                        "2000".into(),
                    ],
                    None,
                    None,
                )
            })
            .collect();
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let out = Command::new(require("redis-cli"))
            .args(&args)
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + START_WAIT;
        loop {
            let ok = nodes
                .iter()
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"));
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }
}

/// One `memcached` process.
pub struct Memcached {
    pub port: u16,
    child: Child,
}

impl Memcached {
    pub fn start() -> Memcached {
        let port = free_port();
        let mut cmd = Command::new(require("memcached"));
        cmd.arg("-l")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .arg("-U")
            .arg("0")
            .arg("-m")
            .arg("64");
        if is_root() {
            cmd.arg("-u").arg("root");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start memcached");
        wait_for_port(port, &mut child);
        Memcached { port, child }
    }

    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    pub fn pause(&self) {
        signal(&self.child, "STOP");
    }

    pub fn resume(&self) {
        signal(&self.child, "CONT");
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        signal(&self.child, "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A CA and a server certificate for 127.0.0.1/localhost, as PEM files.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsFiles {
    pub fn generate() -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        let files = TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            _dir: dir,
        };
        std::fs::write(&files.ca, ca.pem()).expect("write ca");
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}
