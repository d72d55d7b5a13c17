//! The `revoke-proxy` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = revoke_proxy::cli::Cli::parse();
    let code = revoke_proxy::cli::main(cli).await;
    revoke_proxy::logging::flush();
    std::process::exit(code);
}
