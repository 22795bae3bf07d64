//! Running the shop: connect, prepare the schema, bind, serve, and drain on SIGTERM or Ctrl-C.
//!
//! [`serve`] takes a bound listener and a shutdown future so tests can run the real server on port
//! 0 and stop it on cue. The drain sequence is what a Kubernetes rollout needs from the process
//! itself, with no preStop hook (virtual nodes v1 refuse hooks; they also delete a pod's container
//! group without a grace period, so on ACI no drain helps: docs/DEPLOY-AKS.md):
//! 1. the signal arrives: `/readyz` turns 503 at once and responses ask clients to reconnect
//!    (`Connection: close`), while requests are still served;
//! 2. after the drain delay, the listener stops accepting: connections already queued in the
//!    kernel are accepted and answered first, then it closes;
//! 3. in-flight requests finish (bounded by the body-read and request timeouts), idle
//!    connections close, then `serve` returns.
//!
//! Both listeners serve their connections through [`crate::connections`].

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::{LogFormat, MigrateArgs, ServeArgs};
use crate::connections::{self, Limits};
use crate::db::seed::{self, SeedReport};
use crate::db::{Db, DbError, redact_url};
use crate::load::{Controls, default_max_in_flight};
use crate::telemetry::Telemetry;
use crate::web;
use crate::web::state::AppState;

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
        max_in_flight = controls.max_in_flight(),
        control_api = if args.load.admin_token.is_some() {
            "on"
        } else {
            "off (set DOORBUSTER_ADMIN_TOKEN)"
        },
        "load-target controls: {}",
        knobs.describe()
    );
    let state = AppState::with_controls(db.clone(), args.web(), metrics, controls);
    tracing::info!(
        "telemetry: Prometheus: on ({}/metrics)",
        local_url(admin_listener.local_addr()?)
    );
    let shop_addr = listener.local_addr()?;
    tracing::info!("Doorbuster is open at {}", local_url(shop_addr));
    if shop_addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        tracing::info!(
            "listening on every address ({shop_addr}): from other machines, {}",
            match host.trim() {
                "" => "this machine's name or address".to_owned(),
                host => format!("http://{host}:{}", shop_addr.port()),
            }
        );
    }

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
    // The same connection handling as the shop's: a silent client is no cheaper to hold here.
    let table = state.connections.clone();
    let limits = Limits::of(&state.config);
    let finish_timeout = finish_timeout(&state.config);
    connections::serve(
        "admin",
        listener,
        web::admin_router(state),
        limits,
        table,
        stop.cancelled_owned(),
        finish_timeout,
    )
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
        let url = redact_url(&options.url);
        // SQLite says only "unable to open database file" (code 14); when the folder is not
        // writable (a root-owned volume: virtual nodes on ACI ignore fsGroup), say that instead.
        let cause = sqlite_file(&options.url)
            .and_then(|file| unwritable_dir(&file))
            .or_else(|| postgres_failure(&options.url, &error));
        match cause {
            Some(cause) => format!("cannot open the database {url}: {cause}"),
            None => format!("cannot open the database {url}: {error} (check DATABASE_URL)"),
        }
    })?;
    tracing::info!(
        engine = db.engine().as_str(),
        url = %redact_url(&options.url),
        "database connected"
    );
    Ok(db)
}

/// Why PostgreSQL could not be opened, in words that say what to change: the refused port, the
/// password, the database or role that does not exist, TLS the server or the URL insists on.
/// `None` for a URL that is not PostgreSQL's, or an error that says it well enough itself.
fn postgres_failure(url: &str, error: &DbError) -> Option<String> {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    use std::str::FromStr as _;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return None;
    }
    let options = PgConnectOptions::from_str(url).ok()?;
    let (host, port) = (options.get_host(), options.get_port());
    let at = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None if host.contains(':') => format!("[{host}]:{port}"),
        None => format!("{host}:{port}"),
    };
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    let error = match error {
        DbError::Unavailable(error) | DbError::Other(error) => error,
        DbError::TimedOut(waited) => {
            return Some(format!(
                "no answer from {at} within {waited:?} (DOORBUSTER_DB_ACQUIRE_TIMEOUT): check the \
                 host and port in DATABASE_URL, and that a firewall lets port {port} through"
            ));
        }
        DbError::FileGone(_) | DbError::OutcomeUnknown { .. } => return None,
    };
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => Some(format!(
            "connection refused at {at}: no PostgreSQL is listening there (start it, or correct \
             the host and port in DATABASE_URL)"
        )),
        // rustls reports a failed handshake (an untrusted certificate) through the socket.
        sqlx::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Some(format!(
                "TLS with {at} failed: {io} (with sslmode=verify-ca or verify-full, name the CA \
                 that signed the server's certificate: sslrootcert=CA.pem)"
            ))
        }
        sqlx::Error::Io(io) => Some(format!("cannot reach {at}: {io}")),
        sqlx::Error::Tls(tls) if tls.to_string().contains("does not support TLS") => Some(format!(
            "TLS required by DATABASE_URL (sslmode={}), but the server at {at} does not offer \
             it: turn on ssl in the server, or use sslmode=prefer",
            match options.get_ssl_mode() {
                PgSslMode::VerifyFull => "verify-full",
                PgSslMode::VerifyCa => "verify-ca",
                _ => "require",
            }
        )),
        sqlx::Error::Tls(tls) => Some(format!(
            "TLS with {at} failed: {tls} (with sslmode=verify-ca or verify-full, name the CA that \
             signed the server's certificate: sslrootcert=CA.pem)"
        )),
        sqlx::Error::Database(db) => {
            let message = db.message();
            match db.code().as_deref().unwrap_or_default() {
                "28P01" => Some(format!(
                    "wrong password for user \"{user}\" at {at} (the server said: {message}): \
                     correct it in DATABASE_URL or PGPASSWORD"
                )),
                "3D000" => Some(format!(
                    "the database \"{database}\" does not exist at {at}: create it (as a \
                     superuser: CREATE DATABASE {database} OWNER {user};) or correct DATABASE_URL"
                )),
                "28000"
                    if ["no encryption", "SSL off", "SSL connection is required"]
                        .iter()
                        .any(|said| message.contains(said)) =>
                {
                    Some(format!(
                        "TLS required: the server at {at} accepts only encrypted connections \
                         (it said: {message}); remove sslmode=disable from DATABASE_URL, or use \
                         sslmode=require"
                    ))
                }
                "28000" if message.contains("does not exist") => Some(format!(
                    "the role \"{user}\" does not exist at {at}: create it (as a superuser: \
                     CREATE ROLE {user} LOGIN PASSWORD '...';) or correct DATABASE_URL"
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A URL a person can open on this machine for a bound address: one bound to every address
/// (`0.0.0.0`, `::`) is reached at loopback; `http://0.0.0.0:8080` opens nothing in most browsers.
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The file of a `sqlite:` URL (`sqlite:///data/x.db`, `sqlite://x.db`, `sqlite:x.db?mode=rwc`);
/// `None` for an in-memory database or any other URL.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Why SQLite cannot create files next to `file`, in one sentence with what to change, when the
/// reason is the directory: missing, or not writable by this process. `None` when a file can be
/// created there (the cause is something else).
fn unwritable_dir(file: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let meta = match std::fs::metadata(&dir) {
        Ok(meta) => meta,
        Err(error) => {
            return Some(format!(
                "the directory {} cannot be used ({error}): create it or point DATABASE_URL elsewhere",
                dir.display()
            ));
        }
    };
    // The only reliable test of writability (ACLs, read-only mounts): create a file, remove it.
    let probe = dir.join(format!(".doorbuster-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(error) => {
            let (uid, gid) = process_ids();
            Some(format!(
                "the directory {dir} is not writable by uid {uid} (gid {gid}): it is owned by uid {owner}, gid {group}, \
                 mode {mode:04o} ({error}). Mount a volume this user can write at {dir} (Kubernetes: fsGroup {gid} makes \
                 an emptyDir writable, but virtual nodes on ACI ignore fsGroup and securityContext: mount nothing there \
                 and use the image's own {dir}), or point DATABASE_URL at a directory uid {uid} can write",
                dir = dir.display(),
                owner = meta.uid(),
                group = meta.gid(),
                mode = meta.mode() & 0o7777,
            ))
        }
    }
}

/// This process's effective user and group ids, from /proc (no libc needed); "?" elsewhere.
fn process_ids() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    (effective("Uid:"), effective("Gid:"))
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
/// documentation). HTTP/1.1 and HTTP/2, each connection held to the header-read and idle
/// timeouts and the head-size limit (see [`crate::connections`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    drain_delay: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let health = state.health.clone();
    let table = state.connections.clone();
    let limits = Limits::of(&state.config);
    let finish_timeout = finish_timeout(&state.config);
    let app = web::router(state);
    let drained = async move {
        shutdown.await;
        health.start_draining();
        tracing::info!(?drain_delay, "shutdown requested: not ready, still serving");
        tokio::time::sleep(drain_delay).await;
    };
    connections::serve(
        "shop",
        listener,
        app,
        limits,
        table,
        drained,
        finish_timeout,
    )
    .await
}

/// How long in-flight requests may take to finish once the listener is closed: a request cannot
/// outlive its body-read and request timeouts; a little slack covers the write.
fn finish_timeout(config: &crate::config::WebConfig) -> Duration {
    config.body_read_timeout + config.request_timeout + Duration::from_secs(1)
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{local_url, sqlite_file, unwritable_dir};

    /// The start-up line gives a URL a browser opens: loopback for an address bound to all
    /// interfaces, the address itself otherwise.
    #[test]
    fn local_url_can_be_opened() {
        let url = |addr: &str| local_url(addr.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080");
        assert_eq!(url("127.0.0.1:41234"), "http://127.0.0.1:41234");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
    }

    /// The SQLite file is found in every URL form the README documents; memory and PostgreSQL
    /// have none.
    #[test]
    fn sqlite_file_of_each_url_form() {
        let file = |url| sqlite_file(url);
        assert_eq!(
            file("sqlite:///data/doorbuster.db"),
            Some(PathBuf::from("/data/doorbuster.db"))
        );
        assert_eq!(
            file("sqlite://doorbuster.db"),
            Some(PathBuf::from("doorbuster.db"))
        );
        assert_eq!(
            file("sqlite:shop.db?mode=rwc"),
            Some(PathBuf::from("shop.db"))
        );
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://shop?mode=memory&cache=shared"), None);
        assert_eq!(file("postgres://shop@localhost/doorbuster"), None);
    }

    /// A missing directory is named as the cause; a writable one is not blamed (and keeps no
    /// trace of the check).
    #[test]
    fn directory_diagnosis() {
        let missing = unwritable_dir(Path::new("/nonexistent-doorbuster-dir/shop.db"))
            .expect("a missing directory is the cause");
        assert!(
            missing.starts_with("the directory /nonexistent-doorbuster-dir cannot be used"),
            "{missing}"
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unwritable_dir(&dir.path().join("shop.db")), None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
