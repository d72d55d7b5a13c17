//! Command line: `run` (the default), `check`, `demo`. `main.rs` only calls
//! [`main`] and exits with its code.

use crate::app::{App, StartError};
use crate::config::{LogFormat, Settings, EXIT_CONFIG};
use crate::revocation::Clock;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit code when the store or a listener cannot be opened (sysexits EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: i32 = 69;

#[derive(Parser, Debug)]
#[command(name = "revoke-proxy", version, about = "JWT revocation sidecar", long_about = None)]
pub struct Cli {
    /// Configuration file (same as `run --config FILE`).
    #[arg(long, global = false)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy.
    #[command(after_help = "Example:\n  revoke-proxy run --config /etc/revoke-proxy/config.yaml")]
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration and print the effective settings (secrets masked).
    #[command(after_help = "Example:\n  revoke-proxy check --config config/example.yaml")]
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the proxy on the memory store in front of a built-in echo upstream,
    /// and print a token and the curl lines that show 200 → logout → 401.
    #[command(after_help = "Example:\n  revoke-proxy demo --listen 127.0.0.1:8080")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
}

/// Runs the command line; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    match (cli.command, cli.config) {
        (Some(Command::Run { config }), _) | (None, Some(config)) => run(&config).await,
        (Some(Command::Check { config }), _) => check(&config),
        (Some(Command::Demo { listen }), _) => crate::demo::run(listen).await,
        (None, None) => {
            eprintln!("revoke-proxy: give --config FILE, or try `revoke-proxy demo` (see --help)");
            EXIT_CONFIG
        }
    }
}

fn load(path: &std::path::Path) -> Result<Settings, i32> {
    Settings::load(path).map_err(|e| {
        eprintln!(
            "revoke-proxy: {} has {} problem(s):",
            path.display(),
            e.0.len()
        );
        for p in &e.0 {
            eprintln!("  {p}");
        }
        EXIT_CONFIG
    })
}

fn check(path: &std::path::Path) -> i32 {
    let settings = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(problems) =
        crate::auth::Verifier::new(&settings.jwt, &settings.revocation, &settings.forward)
    {
        eprintln!(
            "revoke-proxy: {} has {} problem(s):",
            path.display(),
            problems.len()
        );
        for p in &problems {
            eprintln!("  {p}");
        }
        return EXIT_CONFIG;
    }
    println!("# {} is valid; effective settings:", path.display());
    print!("{}", settings.describe());
    0
}

/// Installs the log subscriber for `settings.log`.
pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::new(&settings.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(path: &std::path::Path) -> i32 {
    let settings = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    init_logging(&settings);
    serve(settings).await
}

/// Builds, binds and serves `settings` until SIGTERM or SIGINT.
pub async fn serve(settings: Settings) -> i32 {
    let app = match App::build(settings, Clock::system()).await {
        Ok(app) => app,
        Err(e) => return report_start_error(&e),
    };
    let (listener, admin) = match app.bind().await {
        Ok(l) => l,
        Err(e) => return report_start_error(&e),
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| app.settings.listen.to_string(), |a| a.to_string());
    let admin_bound = admin
        .as_ref()
        .and_then(|a| a.local_addr().ok())
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    tracing::info!(
        listen = %bound,
        admin = %admin_bound,
        upstream = %app.settings.upstream,
        store = app.proxy.revocations.store_kind(),
        revocations = app.proxy.revocations.len(),
        "Proxy started"
    );
    app.run(listener, admin, shutdown_signal()).await;
    0
}

fn report_start_error(e: &StartError) -> i32 {
    match e {
        StartError::Config(c) => {
            eprintln!("revoke-proxy: invalid configuration:");
            for p in &c.0 {
                eprintln!("  {p}");
            }
            EXIT_CONFIG
        }
        other => {
            eprintln!("revoke-proxy: {other}");
            EXIT_UNAVAILABLE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
