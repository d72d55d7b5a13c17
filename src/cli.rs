//! Command line: `run` (the default), `check`, `demo`, and the admin API
//! clients `revoke`, `purge`, `status`. `main.rs` only calls [`main`] and
//! exits with its code.

use crate::admin::client::{self, Call, Connection, TokenOrClaims};
use crate::config::Settings;
use crate::exit::USAGE as EXIT_CONFIG;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    #[command(
        after_help = "Example:\n  revoke-proxy run --config /etc/revoke-proxy/config.yaml\n\n\
        Exit codes: 0 stopped by SIGTERM/SIGINT after draining, 64 bad configuration (every\n\
        problem listed, nothing bound), 69 a port cannot be bound or the store cannot be opened."
    )]
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration and print the effective settings (secrets masked).
    #[command(
        after_help = "Example:\n  revoke-proxy check --config config/example.yaml\n\n\
        Builds what run builds (keys, certificates, CA files, the store's directory) without\n\
        binding a port or reaching a store. Exit codes: 0 valid, 64 every problem listed."
    )]
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
    /// Revoke one token, or every token of an identity-provider session
    /// (--sid), through a running proxy's admin API.
    #[command(after_help = "Examples:\n  \
        export REVOKE_PROXY_ADMIN_TOKEN=$(cat /run/secrets/admin-token)\n  \
        revoke-proxy revoke --admin http://127.0.0.1:9901 --jwt-file stolen.jwt\n  \
        revoke-proxy revoke --sub alice --jti 4f1c2a --exp 1767225600\n  \
        revoke-proxy revoke --sid 0f6e-session-id\n  \
        echo \"$TOKEN\" | revoke-proxy revoke --token-file admin.token --jwt-file -\n\n\
        Exit codes: 0 done, 64 usage, 65 refused (400), 69 unreachable, 77 admin token refused.")]
    Revoke {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        target: TokenOrClaims,
        /// Expiry of the token (Unix seconds) when revoking by claims.
        #[arg(long, requires = "sub")]
        exp: Option<i64>,
        /// Keep the revocation this many seconds instead of until `exp`.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        lifetime: Option<i64>,
    },
    /// Revoke every token of a subject issued before now, or every token (--all).
    #[command(after_help = "Examples:\n  \
        revoke-proxy purge --admin http://127.0.0.1:9901 --sub alice\n  \
        revoke-proxy purge --all --token-file /run/secrets/admin-token\n\n\
        Give --sub SUBJECT, or --all to purge every subject.\n\
        Exit codes: 0 done, 64 usage, 65 refused (400), 69 unreachable, 77 admin token refused.")]
    Purge {
        #[command(flatten)]
        conn: Connection,
        /// Subject claim value whose tokens are purged (or --all for every subject).
        #[arg(long, conflicts_with = "all")]
        sub: Option<String>,
        /// Purge every token of every subject (global cutoff).
        #[arg(long)]
        all: bool,
        /// Name of revocation.subject_claim on the proxy.
        #[arg(long, default_value = "sub")]
        subject_claim: String,
        /// Keep the cutoff this many seconds (default: max_token_lifetime).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        lifetime: Option<i64>,
        /// Send --sub as a JSON number when it reads as one (for tokens
        /// whose subject is a number, `"sub": 42`).
        #[arg(long)]
        numbers: bool,
    },
    /// Ask whether a token (or a subject/token-id pair) is revoked.
    #[command(after_help = "Examples:\n  \
        revoke-proxy status --jwt-file token.jwt\n  \
        revoke-proxy status --sub alice --jti 4f1c2a --iat 1767220000\n\n\
        Prints {\"revoked\":true,\"reason\":\"token|subject|session|global\"} or {\"revoked\":false}.\n\
        Exit codes: 0 answered, 64 usage, 65 refused (400), 69 unreachable or store down, 77 admin token refused.")]
    Status {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        target: TokenOrClaims,
        /// The token's `iat`, so subject and global cutoffs are checked too.
        #[arg(long, requires = "sub")]
        iat: Option<i64>,
    },
}

/// Runs the command line; returns the process exit code.
pub async fn main(cli: Cli) -> i32 {
    match (cli.command, cli.config) {
        (Some(Command::Run { config }), _) | (None, Some(config)) => run(&config).await,
        (Some(Command::Check { config }), _) => check(&config),
        (Some(Command::Demo { listen }), _) => crate::demo::run(listen).await,
        (
            Some(Command::Revoke {
                conn,
                target,
                exp,
                lifetime,
            }),
            _,
        ) => {
            let call = Call::Revoke {
                target,
                exp,
                lifetime,
            };
            client::run(&conn, &call).await
        }
        (
            Some(Command::Purge {
                conn,
                sub,
                all,
                subject_claim,
                lifetime,
                numbers,
            }),
            _,
        ) => {
            if sub.is_none() && !all {
                eprintln!("revoke-proxy: purge needs --sub SUBJECT, or --all to purge every subject (see purge --help)");
                return crate::exit::USAGE;
            }
            let call = Call::Purge {
                sub,
                all,
                subject_claim,
                lifetime,
                numbers,
            };
            client::run(&conn, &call).await
        }
        (Some(Command::Status { conn, target, iat }), _) => {
            client::run(&conn, &Call::Status { target, iat }).await
        }
        (None, None) => {
            eprintln!("revoke-proxy: give --config FILE, or try `revoke-proxy demo` (see --help)");
            EXIT_CONFIG
        }
    }
}

fn load(path: &std::path::Path) -> Result<Settings, i32> {
    crate::app::load_settings(path).map_err(|e| {
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
    // The same preparation `run` does: keys, certificates, CA files, paths.
    let prepared = match crate::app::prepare(settings) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "revoke-proxy: {} has {} problem(s):",
                path.display(),
                e.0.len()
            );
            for p in &e.0 {
                eprintln!("  {p}");
            }
            return crate::exit::USAGE;
        }
    };
    println!("# {} is valid; effective settings:", path.display());
    print!("{}", prepared.settings.describe());
    crate::exit::OK
}

async fn run(path: &std::path::Path) -> i32 {
    let settings = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::logging::init(&settings);
    crate::app::serve(settings, Some(path.to_path_buf())).await
}
