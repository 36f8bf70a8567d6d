//! The `s3loader` command line. Thin on purpose: the arguments and one
//! function per command live in `cli/`, the work in the library.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    cli.init_logging();
    if let Err(e) = cli.run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
