use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates small, short-lived buffers
/// from both worker threads, where glibc's arenas cost a tenth of a verification (bench/).
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
