//! Test harness: a fresh database per test (a temporary SQLite file, or a new PostgreSQL database
//! cloned from a migrated and seeded template), the real router, and small request helpers.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use doorbuster::config::WebConfig;
use doorbuster::db::{Db, DbOptions};
use doorbuster::server;
use doorbuster::web::state::AppState;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tower::ServiceExt;

/// Runs each listed test twice: `name::sqlite` and `name::postgres`.
macro_rules! db_tests {
    ($( $(#[doc = $doc:literal])+ async fn $name:ident($app:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($app: $crate::support::TestApp) $body

                $(#[doc = $doc])+
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::support::TestApp::sqlite().await).await
                }

                $(#[doc = $doc])+
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    run($crate::support::TestApp::postgres().await).await
                }
            }
        )*
    };
}
pub(crate) use db_tests;

/// Set in the child process [`own_process`] starts, to the name of the test it runs.
const OWN_PROCESS_VAR: &str = "DOORBUSTER_TEST_OWN_PROCESS";

/// Gives a test a process of its own, for tests that change what is global to a process (the
/// global tracing subscriber, as `serve` installs it) or measure it (its CPU time). cargo-nextest
/// already runs every test in its own process; under plain `cargo test`, which runs the whole
/// suite as threads of one process, this runs the test `name` (its path, as `cargo test` lists
/// it) again in a child process of this test binary and reports how that went.
///
/// Returns `true` where the caller is to run the test's body (the child, or under nextest) and
/// `false` where the child already ran it and passed; panics with the child's output if it failed.
/// Blocks while the child runs: call it first, before the test starts anything.
pub fn own_process(name: &str) -> bool {
    if std::env::var_os(OWN_PROCESS_VAR).is_some()
        || std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test")
    {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(OWN_PROCESS_VAR, name)
        .output()
        .expect("start the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown by the harness when the test fails or runs with --nocapture.
    println!("{name} in a process of its own:\n{stdout}{stderr}");
    // A name that matches no test passes with "0 passed": that must not count as a pass.
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} failed in its own process ({}):\n{stdout}\n{stderr}",
        output.status
    );
    false
}

/// Where the PostgreSQL tests find their server (set by `scripts/test`).
const POSTGRES_URL_VAR: &str = "DOORBUSTER_TEST_POSTGRES_URL";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresDatabase>,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(WebConfig::default()).await
    }

    pub async fn sqlite_with(config: WebConfig) -> TestApp {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("shop.db").display());
        let db = Db::connect(&options(&url)).await.expect("open SQLite");
        server::prepare(&db).await.expect("migrate and seed SQLite");
        Self::build(db, config, Some(dir), None)
    }

    pub async fn postgres() -> TestApp {
        Self::postgres_with(WebConfig::default()).await
    }

    pub async fn postgres_with(config: WebConfig) -> TestApp {
        Self::postgres_with_options(config, |options| options).await
    }

    /// A PostgreSQL app whose database options `tweak` adjusts (timeouts, pool size).
    pub async fn postgres_with_options(
        config: WebConfig,
        tweak: impl FnOnce(DbOptions) -> DbOptions,
    ) -> TestApp {
        let database = PostgresDatabase::create().await;
        let db = Db::connect(&tweak(options(&database.url)))
            .await
            .expect("open PostgreSQL test database");
        Self::build(db, config, None, Some(database))
    }

    /// A PostgreSQL app whose connections go through `proxy` (given the server's `host:port`, it
    /// returns its own handle, kept in `holder`, and the `host:port` to connect to instead).
    /// Connections wait at most a second and statements two, so a cut shows up as 503s quickly.
    pub async fn postgres_through<P, F, Fut>(proxy: F, holder: &mut Option<P>) -> TestApp
    where
        F: FnOnce(&str) -> Fut,
        Fut: std::future::Future<Output = (P, String)>,
    {
        Self::postgres_through_with_password(proxy, holder, None).await
    }

    /// [`TestApp::postgres_through`] with `password` in the database URL, as a real deployment's
    /// has (the test server trusts local connections, so it is never asked for): for tests that
    /// check it goes nowhere else.
    pub async fn postgres_through_with_password<P, F, Fut>(
        proxy: F,
        holder: &mut Option<P>,
        password: Option<&str>,
    ) -> TestApp
    where
        F: FnOnce(&str) -> Fut,
        Fut: std::future::Future<Output = (P, String)>,
    {
        let database = PostgresDatabase::create().await;
        let rest = database.url.split("://").nth(1).expect("a URL");
        let host_port = rest
            .split('@')
            .next_back()
            .and_then(|h| h.split('/').next())
            .expect("host:port");
        let (handle, proxied) = proxy(host_port).await;
        *holder = Some(handle);
        // In clear text, so a proxy can see what passes (the server would offer TLS).
        let mut url = format!(
            "{}?sslmode=disable",
            database.url.replacen(host_port, &proxied, 1)
        );
        if let Some(password) = password {
            let (scheme, rest) = url.split_once("://").expect("a URL");
            let (user, host) = rest
                .split_once('@')
                .expect("a user in the test server's URL");
            let user = user.split(':').next().unwrap_or(user);
            url = format!("{scheme}://{user}:{password}@{host}");
        }
        let options = DbOptions {
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(2),
            ..options(&url)
        };
        let db = Db::connect(&options)
            .await
            .expect("open PostgreSQL through the proxy");
        Self::build(db, WebConfig::default(), None, Some(database))
    }

    /// Another replica on this app's PostgreSQL database: its own pool, catalog and page cache,
    /// as a second pod sharing the database has.
    pub async fn another_replica(&self, config: WebConfig) -> TestApp {
        let database = self
            ._postgres
            .as_ref()
            .expect("replicas share a PostgreSQL database");
        let db = Db::connect(&options(&database.url))
            .await
            .expect("open PostgreSQL test database again");
        Self::build(db, config, None, None)
    }

    /// An app on a database the test opened itself (e.g. on a filesystem it staged).
    pub fn from_db(db: Db, config: WebConfig) -> TestApp {
        Self::build(db, config, None, None)
    }

    fn build(
        db: Db,
        config: WebConfig,
        sqlite_dir: Option<tempfile::TempDir>,
        postgres: Option<PostgresDatabase>,
    ) -> TestApp {
        let state = AppState::new(db, config);
        TestApp {
            router: doorbuster::web::router(state.clone()),
            state,
            _sqlite_dir: sqlite_dir,
            _postgres: postgres,
        }
    }

    /// The same database behind a different state (other knobs, metrics or config).
    pub fn with_state(mut self, state: AppState) -> TestApp {
        self.router = doorbuster::web::router(state.clone());
        self.state = state;
        self
    }

    pub async fn request(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn get_with_cookie(&self, uri: &str, cookie: &str) -> TestResponse {
        self.request(
            Request::get(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, body: &Value) -> TestResponse {
        self.post_json_with(uri, body, &[]).await
    }

    pub async fn post_json_with(
        &self,
        uri: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.request(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// Submits an HTML form the way a browser does, with the cart cookie if given.
    pub async fn post_form(
        &self,
        uri: &str,
        fields: &[(&str, &str)],
        cookie: &str,
    ) -> TestResponse {
        self.post_form_with(uri, fields, cookie, &[]).await
    }

    /// [`TestApp::post_form`] with more headers (`Origin`, `Sec-Fetch-Site`, `Host`, …).
    pub async fn post_form_with(
        &self,
        uri: &str,
        fields: &[(&str, &str)],
        cookie: &str,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if !cookie.is_empty() {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.request(request.body(Body::from(body)).unwrap()).await
    }

    /// A product from the API, by slug.
    pub async fn product(&self, slug: &str) -> Value {
        let response = self.get(&format!("/api/products/{slug}")).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()
    }

    /// All products, from the API.
    pub async fn products(&self) -> Vec<Value> {
        let response = self.get("/api/products?per_page=100").await;
        assert_eq!(response.status, StatusCode::OK);
        response.json()["items"].as_array().unwrap().clone()
    }

    /// The first product matching `pred`.
    pub async fn find_product(&self, pred: impl Fn(&Value) -> bool) -> Value {
        self.products()
            .await
            .into_iter()
            .find(|p| pred(p))
            .expect("the seeded catalog has such a product")
    }

    /// What the catalog refresh does every `DOORBUSTER_CATALOG_REFRESH`, now: for tests that
    /// change the database behind the shop's back (an operator's restock, another replica).
    pub async fn refresh_catalog(&self) {
        self.state
            .catalog
            .refresh(&self.state.db)
            .await
            .expect("the catalog refreshes");
    }

    pub async fn order_count(&self) -> i64 {
        doorbuster::db::orders::count(&self.state.db).await.unwrap()
    }
}

pub fn options(url: &str) -> DbOptions {
    DbOptions {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        ..DbOptions::new(url)
    }
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A checkout body for the API with a valid customer.
pub fn checkout_body(items: &[(i64, i64)]) -> Value {
    serde_json::json!({
        "items": items.iter().map(|(id, q)| serde_json::json!({"product_id": id, "quantity": q})).collect::<Vec<_>>(),
        "customer": valid_customer(),
    })
}

pub fn valid_customer() -> Value {
    serde_json::json!({
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "address": "1 Compiler Way",
        "city": "Arlington",
        "postal_code": "22201",
        "country": "United States"
    })
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `name=value` pair the response sets for the cart cookie, ready to send back.
    pub fn cart_cookie(&self) -> String {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("cart="))
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no cart cookie set; headers: {:?}", self.headers))
    }

    /// Asserts an RFC 9457 problem document with this status, and returns it.
    #[track_caller]
    pub fn problem(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.header("content-type"), "application/problem+json");
        let problem = self.json();
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["type"].is_string() && problem["title"].is_string());
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.len() > 10,
            "a detail that says what to do: {problem}"
        );
        problem
    }
}

/// A PostgreSQL database made for one test and dropped after it.
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    async fn create() -> PostgresDatabase {
        let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "PostgreSQL tests need a server: run scripts/test (it starts one), or set \
                 {POSTGRES_URL_VAR}=postgres://USER@HOST:PORT/postgres"
            )
        });
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_URL_VAR}: {e}"));
        let template = ensure_template(&mut admin, &admin_url).await;
        let name = format!("doorbuster_test_{:016x}", rand_u64());
        // Cloning a template is refused while another session is connected to the template; the
        // template builder disconnects before releasing its lock, so retries are only for races
        // with autovacuum.
        let create = format!("CREATE DATABASE {name} TEMPLATE {template}");
        let mut attempts = 0;
        loop {
            match sqlx::raw_sql(sqlx::AssertSqlSafe(create.clone()))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                Err(error) if attempts < 20 => {
                    attempts += 1;
                    eprintln!("retrying {create}: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("{create}: {error}"),
            }
        }
        let _ = admin.close().await;
        PostgresDatabase {
            url: database_url(&admin_url, &name),
            admin_url,
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside async context: use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                admin.close().await.ok()
            });
            Ok::<(), std::io::Error>(())
        })
        .join();
    }
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let (server, _) = base.rsplit_once('/').expect("a URL with a database path");
    format!("{server}/{name}")
}

/// A migrated, seeded database to clone, named after the schema and seed it holds so a changed
/// migration gets a new template.
async fn ensure_template(admin: &mut PgConnection, admin_url: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut fingerprint = Vec::new();
    let mut migrations: Vec<_> = std::fs::read_dir(format!("{root}/migrations/postgres"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    migrations.sort();
    for path in migrations {
        fingerprint.extend(std::fs::read(path).unwrap());
    }
    fingerprint.extend(std::fs::read(format!("{root}/seed/catalog.json")).unwrap());
    let template = format!(
        "doorbuster_template_{:016x}",
        doorbuster::web::assets::fnv1a(&fingerprint)
    );

    sqlx::query("SELECT pg_advisory_lock(7347)")
        .execute(&mut *admin)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut *admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{template}_building");
        for sql in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *admin)
                .await
                .unwrap();
        }
        let db = Db::connect(&options(&database_url(admin_url, &building)))
            .await
            .unwrap();
        server::prepare(&db)
            .await
            .expect("migrate and seed the PostgreSQL template");
        db.close().await;
        // Renaming only once complete means no test ever clones a half-built template.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {template}"
        )))
        .execute(&mut *admin)
        .await
        .unwrap();
    }
    sqlx::query("SELECT pg_advisory_unlock(7347)")
        .execute(&mut *admin)
        .await
        .unwrap();
    template
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    RandomState::new().hash_one((nanos, std::process::id(), std::thread::current().id()))
}
