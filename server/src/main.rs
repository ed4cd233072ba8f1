use clap::Parser;
use clink_server::Config;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    let otp = clink_server::otp::sender_for(&config);
    let server = match clink_server::start(config, otp).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("clink-server: {e}");
            std::process::exit(1);
        }
    };
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    server.shutdown().await;
}
