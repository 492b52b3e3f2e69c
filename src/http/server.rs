//! The process: `serve` builds the state from the configuration, starts the background work
//! (migrations, the cache-invalidation listener, `lastUsedAt` batches) and runs the HTTP/1.1
//! server loop until SIGTERM or ctrl-c.
//!
//! axum's `serve` has no header-read timeout, so the loop drives hyper directly: slow or stalled
//! request heads (slowloris) are cut off, every request carries the peer address for rate
//! limiting, and shutdown is graceful but bounded by a grace period.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::app::{app, AppOptions};
use super::state::{AppState, StateConfig};
use crate::auth::rate_limit::FailureLimits;
use crate::auth::{invalidation, CacheConfig};
use crate::config::ServeConfig;
use crate::credential::{HashKey, PasswordHasher};
use crate::db::readers::ReadersConfig;
use crate::gateway::rules::RouteRules;
use crate::gateway::secret_scanning::ScanningKeys;
use crate::gateway::GatewayConfig;
use crate::policy::{parse_extra_actions, Catalogue};

/// hyper's read buffer: request heads larger than this are refused by hyper itself (431);
/// between `MAX_HEADER_BYTES` and this, the application answers 431 in the envelope.
const MAX_READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// A request head must arrive within this time, or the connection is closed.
    pub header_read_timeout: Duration,
    /// After the shutdown signal, in-flight requests get this long before the process exits.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` until `shutdown` completes; then stops accepting, lets in-flight requests
/// finish (idle keep-alive connections close at once), and returns within the grace period.
pub async fn run(
    listener: TcpListener,
    app: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(options.header_read_timeout)
                    .max_buf_size(MAX_READ_BUFFER)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    // New connections are refused from here on.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!(grace_secs = options.shutdown_grace.as_secs(),
                "grace period over; closing the remaining connections");
        }
    }
}

/// How often `lastUsedAt` values are written (SPEC §5.3 allows 60 s of staleness).
const LAST_USED_FLUSH_INTERVAL: Duration = Duration::from_secs(15);

/// Serves until SIGTERM or ctrl-c, then lets in-flight requests finish.
/// `previous_hash_keys`: the keys before `hash_key` (`TOKENGATE_PREVIOUS_HASH_KEYS`).
pub async fn serve(
    config: ServeConfig,
    hash_key: HashKey,
    previous_hash_keys: Vec<HashKey>,
) -> anyhow::Result<()> {
    let db = crate::db::pool(&config.database)?;
    // Key ids name keys without revealing them: what `tokengate key-status` prints.
    let previous_ids: Vec<String> = previous_hash_keys
        .iter()
        .map(|k| k.id().to_string())
        .collect();
    tracing::info!(key_id = %hash_key.id(), previous_key_ids = ?previous_ids, "hash keys");
    let extra_actions = parse_extra_actions(&config.extra_actions).map_err(anyhow::Error::msg)?;
    let catalogue = Catalogue::builtin().with_extra(extra_actions);
    let gateway = gateway_config(&config, &catalogue)?;
    let state = AppState::new(StateConfig {
        db: db.clone(),
        hash_key,
        previous_hash_keys,
        hasher: PasswordHasher::new(config.max_concurrent_hashes(), config.max_queued_hashes)?,
        catalogue,
        session_ttl: config.session_ttl(),
        cache: CacheConfig {
            ttl: config.cache_ttl(),
            max_entries: config.cache_max_entries,
            ..CacheConfig::default()
        },
        readers: ReadersConfig::from_database(&config.database),
        limits: FailureLimits {
            auth_failures_per_minute: config.auth_failures_per_minute,
            auth_failure_burst: config.auth_failure_burst,
            login_failures_per_15_minutes: config.login_failures,
            address_login_failures_per_15_minutes: config.login_failures_per_address,
        },
        max_token_lifetime: config.max_token_lifetime(),
        gateway,
        // Applied in the background (below): until then the service answers, not ready.
        migrated: false,
    });
    let caches = state.auth.caches.clone();
    state
        .hasher
        .pace(f64::from(config.hash_share_under_load) / 100.0, move || {
            caches.stats.verifications()
        });
    let options = AppOptions {
        request_timeout: config.request_timeout(),
        cors_origins: config.cors_origins.clone(),
    };
    let server_options = ServerOptions {
        header_read_timeout: config.header_read_timeout(),
        shutdown_grace: config.shutdown_grace(),
    };

    let tcp = TcpListener::bind(config.listen).await?;
    tracing::info!(address = %config.listen, "listening");
    // Background work: the cache-invalidation listener, the batches that read members'
    // permissions again after a change, lastUsedAt batches, and migrations —
    // applied in the background so that while the database is unreachable the service answers,
    // reports not-ready and keeps retrying instead of crash-looping.
    let listen_url = config
        .listen_database_url
        .as_ref()
        .unwrap_or(&config.database.database_url);
    let listen_options: sqlx::postgres::PgConnectOptions = listen_url
        .expose()
        .parse()
        .map_err(|e| anyhow::anyhow!("the listener's database URL: {e}"))?;
    tokio::spawn(invalidation::listen(
        listen_options,
        state.auth.caches.clone(),
    ));
    tokio::spawn(state.auth.clone().refresh_members());
    let last_used = state.auth.last_used.clone();
    tokio::spawn(last_used.clone().run(db.clone(), LAST_USED_FLUSH_INTERVAL));
    tokio::spawn(migrate_until_done(state.clone()));

    let readers = state.auth.readers.clone();
    run(tcp, app(state, &options), server_options, shutdown_signal()).await;
    if let Err(e) = last_used.flush(&db).await {
        tracing::warn!(error = %e, "could not record lastUsedAt at shutdown");
    }
    readers.close().await;
    tracing::info!("shut down");
    Ok(())
}

/// The route rules and secret-scanning keys the configuration names, read and checked now: a
/// broken file stops the start rather than failing requests.
fn gateway_config(config: &ServeConfig, catalogue: &Catalogue) -> anyhow::Result<GatewayConfig> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))
    };
    let route_rules = match &config.route_rules {
        None => None,
        Some(path) => {
            let rules = RouteRules::parse(&read(path, "TOKENGATE_ROUTE_RULES")?)?;
            if let Some(unknown) = rules.actions().find(|a| !catalogue.contains(a)) {
                anyhow::bail!("route rules: action {unknown:?} is not in the catalogue");
            }
            tracing::info!(path = %path.display(), "route rules loaded");
            Some(Arc::new(rules))
        }
    };
    let scanning_keys = match &config.secret_scanning_keys_file {
        None => None,
        Some(path) => {
            let text = read(path, "TOKENGATE_SECRET_SCANNING_KEYS_FILE")?;
            Some(Arc::new(
                ScanningKeys::parse(&text).map_err(anyhow::Error::msg)?,
            ))
        }
    };
    Ok(GatewayConfig {
        route_rules,
        scanning_keys,
    })
}

async fn migrate_until_done(state: AppState) {
    let mut delay = Duration::from_millis(500);
    loop {
        match crate::db::migrate(&state.db).await {
            Ok(()) => {
                tracing::info!("database ready, migrations applied");
                label_digests(&state).await;
                state.migrated.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                    "database not ready; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Without previous keys, the current key is the only one that can verify a credential, so
/// digests stored before key ids were recorded are labelled with it (`tokengate key-status`).
async fn label_digests(state: &AppState) {
    if !state.auth.previous_keys.is_empty() {
        return;
    }
    match crate::db::hash_keys::label_unlabelled(&state.db, state.auth.hash_key.id()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(digests = n, key_id = %state.auth.hash_key.id(),
            "labelled digests made before key ids were recorded with the current key"),
        Err(e) => tracing::warn!(error = %e, "could not label digests with the current key id"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
