//! The `revoke-proxy` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = match revoke_proxy::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are answers, not errors; a bad command
            // line is a usage error (64), as the other tools here exit.
            let code = if e.use_stderr() {
                revoke_proxy::exit::USAGE
            } else {
                revoke_proxy::exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = revoke_proxy::cli::main(cli).await;
    revoke_proxy::logging::flush();
    std::process::exit(code);
}
