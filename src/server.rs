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
    let db = connect(&args.database.options()).await?;
    if args.skip_migrations {
        tracing::info!("skipping migrations (DOORBUSTER_SKIP_MIGRATIONS)");
    } else {
        prepare(&db).await?;
    }
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
    let state =
        AppState::with_controls(db.clone(), args.web(), telemetry.metrics.clone(), controls);
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
    telemetry.shutdown(TELEMETRY_FLUSH_TIMEOUT).await;
    served?;
    tracing::info!("stopped");
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

/// Serves `state`'s shop on `listener` until `shutdown` resolves, then drains (see the module
/// documentation).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    drain_delay: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let health = state.health.clone();
    // In-flight requests cannot outlive the request timeout; a little slack covers the write.
    let finish_timeout = state.config.request_timeout + Duration::from_secs(1);
    let app = web::router(state);
    let listener_closed = CancellationToken::new();
    let drained = {
        let listener_closed = listener_closed.clone();
        async move {
            shutdown.await;
            health.start_draining();
            tracing::info!(?drain_delay, "shutdown requested: not ready, still serving");
            tokio::time::sleep(drain_delay).await;
            tracing::info!("closing the listener, finishing in-flight requests");
            listener_closed.cancel();
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(drained);
    tokio::select! {
        result = server => result,
        () = async {
            listener_closed.cancelled().await;
            tokio::time::sleep(finish_timeout).await;
        } => {
            tracing::warn!(?finish_timeout, "in-flight requests did not finish in time; exiting anyway");
            Ok(())
        }
    }
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
