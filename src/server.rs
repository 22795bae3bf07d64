//! Running the shop: connect, prepare the schema, bind, serve, and drain on SIGTERM or Ctrl-C.
//!
//! [`serve`] takes a bound listener and a shutdown future so tests can run the real server on port
//! 0 and stop it on cue. The drain sequence is what a Kubernetes rollout (or a virtual node, which
//! runs no lifecycle hooks) needs from the process itself:
//! 1. the signal arrives: `/readyz` turns 503 at once and responses ask clients to reconnect
//!    (`Connection: close`), while requests are still served;
//! 2. after the drain delay, the listener stops accepting;
//! 3. in-flight requests finish (bounded by the request timeout), then `serve` returns.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::net::SocketAddr;

use crate::config::{LogFormat, MigrateArgs, ServeArgs};
use crate::db::seed::{self, SeedReport};
use crate::db::{Db, redact_url};
use crate::load::{Controls, default_max_in_flight};
use crate::state::AppState;
use crate::telemetry::Telemetry;
use crate::web;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long telemetry may take to flush at shutdown: inside Kubernetes' grace period.
const TELEMETRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// `doorbuster serve`.
pub async fn run(args: ServeArgs, log_format: LogFormat) -> Result<(), BoxError> {
    let telemetry = Telemetry::install(&args.telemetry, log_format)?;
    let metrics = telemetry.metrics.clone();
    let result = run_with(args, metrics).await;
    // Flush on every path, failures included: dropping the exporters inside the runtime instead
    // would block on their own tasks.
    telemetry.shutdown(TELEMETRY_FLUSH_TIMEOUT).await;
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

async fn run_with(
    args: ServeArgs,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> Result<(), BoxError> {
    let db = connect(&args.database.options()).await?;
    if args.skip_migrations {
        tracing::info!("skipping migrations (DOORBUSTER_SKIP_MIGRATIONS)");
    } else {
        prepare(&db).await?;
    }
    // A store that cannot take orders (a read-only or full volume) still serves pages, so the
    // shop starts; the store logs why once, and `/readyz` stays false until it can write again.
    let _ = db.readiness().await;
    let addr = args.listen_addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error} (set PORT or --port)"))?;
    let admin_addr = SocketAddr::new(args.host, args.admin_port);
    let admin_listener = TcpListener::bind(admin_addr).await.map_err(|error| {
        format!(
            "cannot listen on {admin_addr}: {error} (set DOORBUSTER_ADMIN_PORT or --admin-port)"
        )
    })?;
    let knobs = args
        .load
        .knobs()
        .map_err(|reason| format!("load-target settings (DOORBUSTER_CPU_WORK, DOORBUSTER_LATENCY, DOORBUSTER_ERROR_RATE): {reason}"))?;
    let controls = Controls::new(
        knobs,
        args.load
            .max_in_flight
            .unwrap_or_else(default_max_in_flight),
        None,
    );
    tracing::info!(
        ?knobs,
        max_in_flight = controls.max_in_flight(),
        control_api = if args.load.admin_token.is_some() {
            "on"
        } else {
            "off (set DOORBUSTER_ADMIN_TOKEN)"
        },
        "load-target controls"
    );
    let state = AppState::with_controls(db.clone(), args.web(), metrics, controls);
    tracing::info!(
        "telemetry: Prometheus: on (http://{}/metrics)",
        admin_listener.local_addr()?
    );
    tracing::info!("Doorbuster is open at http://{}", listener.local_addr()?);

    // The admin listener outlives the shop's drain so the last scrapes still see the totals.
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(serve_admin(
        admin_listener,
        state.clone(),
        admin_stop.clone(),
    ));
    let served = serve(listener, state, args.drain_delay, shutdown_signal()).await;
    admin_stop.cancel();
    let _ = admin.await;
    db.close().await;
    served?;
    Ok(())
}

/// The admin listener: Prometheus metrics, never exposed by the public Service.
pub async fn serve_admin(
    listener: TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, web::admin_router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// `doorbuster migrate`.
pub async fn migrate(args: MigrateArgs) -> Result<(), BoxError> {
    let db = connect(&args.database.options()).await?;
    prepare(&db).await?;
    if args.restock {
        let products = seed::restock(&db).await?;
        tracing::info!(products, "restocked every product to its seeded level");
    }
    if let Some(units) = args.restock_to {
        let products = seed::restock_to(&db, i64::from(units)).await?;
        tracing::info!(products, units, "restocked every product to the same level");
    }
    db.close().await;
    Ok(())
}

async fn connect(options: &crate::db::DbOptions) -> Result<Db, BoxError> {
    let db = Db::connect(options).await.map_err(|error| {
        format!(
            "cannot open the database {}: {error} (check DATABASE_URL)",
            redact_url(&options.url)
        )
    })?;
    tracing::info!(
        engine = db.engine().as_str(),
        url = %redact_url(&options.url),
        "database connected"
    );
    Ok(db)
}

/// Applies migrations and seeds the catalog; both are idempotent.
pub async fn prepare(db: &Db) -> Result<SeedReport, BoxError> {
    db.migrate()
        .await
        .map_err(|error| format!("migrations failed: {error}"))?;
    let report = seed::seed(db)
        .await
        .map_err(|error| format!("seeding the catalog failed: {error}"))?;
    tracing::info!(
        categories_added = report.categories_added,
        products_added = report.products_added,
        "schema up to date, catalog seeded"
    );
    Ok(report)
}

/// Largest request head (request line and headers) accepted; beyond it the answer is 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// Serves `state`'s shop on `listener` until `shutdown` resolves, then drains (see the module
/// documentation). HTTP/1.1 and HTTP/2, with a header-read timeout (a slowloris guard) and the head-size limit above.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    drain_delay: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let health = state.health.clone();
    // In-flight requests cannot outlive the request timeout; a little slack covers the write.
    let finish_timeout = state.config.request_timeout + Duration::from_secs(1);
    let header_read_timeout = state.config.header_read_timeout;
    let app = web::router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    builder.http2().timer(TokioTimer::new());
    let connections = GracefulShutdown::new();

    let drained = async move {
        shutdown.await;
        health.start_draining();
        tracing::info!(?drain_delay, "shutdown requested: not ready, still serving");
        tokio::time::sleep(drain_delay).await;
    };
    tokio::pin!(drained);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(app.clone());
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = connections.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                    });
                }
                // Out of file descriptors, or a connection reset before it was accepted: keep
                // serving the connections we have, and try again shortly.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut drained => break,
        }
    }
    drop(listener);
    tracing::info!("listener closed, finishing in-flight requests");
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(finish_timeout) => {
            tracing::warn!(?finish_timeout, "in-flight requests did not finish in time; exiting anyway");
        }
    }
    Ok(())
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
