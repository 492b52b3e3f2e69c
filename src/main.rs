use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates small, short-lived buffers
/// from every worker thread, which glibc's arenas serve slowly (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tokengate::cli::Cli::parse();
    match tokengate::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("tokengate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
