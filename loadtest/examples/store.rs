//! Standalone `loadtest store` for running the benchmark without the
//! `navarch` binary: `cargo run --release -p navarch-loadtest --example store -- --help`.

use clap::Parser;

/// Command line of the standalone store benchmark.
#[derive(Parser, Debug)]
#[command(about = "etcd v3 store benchmark (same as `navarch loadtest store`)")]
struct Cli {
    #[command(flatten)]
    store: navarch_loadtest::StoreArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    navarch_loadtest::run_store(cli.store).await?;
    Ok(())
}
