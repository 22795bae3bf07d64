//! The load generator against real listeners on 127.0.0.1: the in-process shop (on both
//! databases), small stand-in servers for the marker and for failures, and the real binary for
//! exit statuses and Ctrl-C. Every run is bounded by a request count or a short duration.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use doorbuster::loadgen::shape::Stages;
use doorbuster::loadgen::{
    self, EXIT_ERROR_RATE, EXIT_PASSED, EXIT_UNUSABLE, LoadgenArgs, Scenario, StopReason, Target,
};
use doorbuster::server;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{TestApp, db_tests};

/// A server on 127.0.0.1 that stops when dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn args(&self) -> LoadgenArgs {
        LoadgenArgs::new(Target::parse(&format!("http://{}", self.addr)).unwrap())
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The real shop, served the way `doorbuster serve` serves it.
async fn serve_shop(app: &TestApp) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        app.state.clone(),
        Duration::ZERO,
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        task: tokio::spawn(async move {
            task.await.unwrap().unwrap();
        }),
    }
}

/// Any router on a real listener.
async fn serve_router(router: Router) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn load(args: LoadgenArgs) -> loadgen::Report {
    loadgen::run_until(args, std::future::pending())
        .await
        .expect("the run starts")
}

db_tests! {
    /// A short staged surge completes, every step's count follows from the journeys taken,
    /// and the orders it reports are the orders the database gained.
    async fn staged_journeys_add_up_to_real_orders(app) {
        let orders_before = app.order_count().await;
        let shop = serve_shop(&app).await;
        let mut args = shop.args();
        args.stages = Some(Stages::parse("1s:4,1s:4,500ms:0").unwrap());
        args.mix = loadgen::scenario::Mix::parse("browse=40,cart=30,checkout=30").unwrap();
        let report = load(args).await;
        shop.stop().await;

        assert_eq!(report.stopped_by, StopReason::Completed);
        assert!(report.passed && report.errors == 0, "{report}");
        assert_eq!(report.exit_code(), EXIT_PASSED);
        assert_eq!(report.peak_users, 4);
        let (browse, cart, checkout) =
            (report.journey("browse"), report.journey("cart"), report.journey("checkout"));
        for kind in [browse, cart, checkout] {
            assert_eq!(kind.interrupted + kind.failed, 0, "{report}");
            assert_eq!(kind.started, kind.completed + kind.sold_out, "{report}");
        }
        let started = browse.started + cart.started + checkout.started;
        assert!(started > 0 && checkout.started > 0, "{report}");
        let steps: u64 = report.steps.iter().map(|s| s.requests).sum();
        assert_eq!(steps, report.requests);
        // home → category → product(s) → add → cart → checkout, each journey as far as it went.
        assert_eq!(report.requests("home"), started);
        assert_eq!(report.requests("category"), started);
        assert_eq!(report.requests("product"), 2 * browse.started + cart.started + checkout.started);
        assert_eq!(report.requests("add_to_cart"), cart.started + checkout.started);
        let added = report.step("add_to_cart").unwrap();
        assert_eq!(report.requests("cart"), added.requests - added.sold_out);
        let placed = report.step("checkout").unwrap();
        assert_eq!(placed.requests, checkout.completed + placed.sold_out);
        assert_eq!(report.orders_placed, checkout.completed);
        assert_eq!(report.orders_placed, placed.orders_placed);
        assert_eq!(app.order_count().await - orders_before, report.orders_placed as i64);
    }

    /// The API checkout scenario stops at the request limit, each answer is an order or a
    /// sold-out 409, and the database holds exactly the orders reported.
    async fn checkout_scenario_orders_match_the_database(app) {
        let shop = serve_shop(&app).await;
        let mut args = shop.args();
        args.scenario = Scenario::Checkout;
        args.requests = Some(60);
        args.users = Some(4);
        let report = load(args).await;
        shop.stop().await;

        assert_eq!(report.stopped_by, StopReason::RequestLimit);
        assert_eq!(report.requests, 60);
        let step = report.step("api_checkout").expect("the checkout line");
        assert_eq!(step.requests, 60);
        assert_eq!(report.orders_placed + report.sold_out, 60, "{report}");
        assert_eq!(app.order_count().await, report.orders_placed as i64);
        assert!(report.orders_placed > 0);
    }
}

type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

async fn record(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    let entry = (
        format!("{} {}", request.method(), request.uri().path()),
        header(&request, "baggage"),
        header(&request, "user-agent"),
    );
    seen.lock().unwrap().push(entry);
    next.run(request).await
}

fn header(request: &Request, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Every request, discovery included, carries the synthetic-traffic baggage and names the
/// generator and its version in the User-Agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_synthetic_marker() {
    let app = TestApp::sqlite().await;
    let seen: Seen = Arc::default();
    let router = doorbuster::web::router(app.state.clone())
        .layer(middleware::from_fn_with_state(seen.clone(), record));
    let shop = serve_router(router).await;
    let mut args = shop.args();
    args.requests = Some(30);
    args.users = Some(2);
    args.mix = loadgen::scenario::Mix::parse("checkout=1").unwrap();
    let report = load(args).await;
    shop.stop().await;

    let seen = seen.lock().unwrap();
    // Two discovery requests (categories, one page of products), then the counted ones.
    assert_eq!(seen.len() as u64, report.requests + 2);
    for (request, baggage, user_agent) in seen.iter() {
        assert_eq!(baggage, loadgen::SYNTHETIC_BAGGAGE, "{request}");
        assert_eq!(baggage, "synthetic=true");
        assert_eq!(
            user_agent,
            &format!("doorbuster-loadgen/{}", env!("CARGO_PKG_VERSION"))
        );
    }
    for path in [
        "GET /api/categories",
        "GET /",
        "POST /cart/add",
        "GET /cart",
        "POST /checkout",
    ] {
        assert!(
            seen.iter().any(|(r, _, _)| r == path),
            "no {path} in {seen:?}"
        );
    }
}

/// A target that answers 500 fails the run (exit status 1); a generous limit passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_over_the_limit_fail_the_run() {
    let broken = serve_router(Router::new().route(
        "/",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down for stocktaking") }),
    ))
    .await;
    let mut args = broken.args();
    args.scenario = Scenario::Home;
    args.requests = Some(20);
    let report = load(args.clone()).await;
    assert_eq!(report.errors, 20);
    assert_eq!(report.step("home").unwrap().statuses["500"], 20);
    assert_eq!(report.error_rate_percent, 100.0);
    assert!(!report.passed);
    assert_eq!(report.exit_code(), EXIT_ERROR_RATE);
    assert!(report.to_string().contains("FAILED"));

    args.max_error_rate = 100.0;
    assert_eq!(load(args).await.exit_code(), EXIT_PASSED);
    broken.stop().await;
}

/// In the open model, requests start at the asked rate, never above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_keeps_to_its_rate() {
    let app = TestApp::sqlite().await;
    let shop = serve_shop(&app).await;
    let mut args = shop.args();
    args.scenario = Scenario::Api;
    args.rps = Some(40.0);
    args.duration = Some(Duration::from_secs(1));
    let report = load(args).await;
    shop.stop().await;
    assert_eq!(report.model, "open");
    assert!(report.errors == 0 && report.requests > 0, "{report}");
    // 40 per second for one second, plus at most one for rounding at the last tick.
    assert!(report.requests <= 41, "{report}");
}

/// The binary: an unreachable target, or a bad argument, is exit status 2 with a message that
/// says what is wrong; no panic.
#[test]
fn an_unreachable_target_exits_2_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .args([
            "loadgen",
            "--target",
            "http://127.0.0.1:1",
            "--timeout",
            "3s",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(i32::from(EXIT_UNUSABLE)),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: cannot reach http://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("Is the shop running"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .args([
            "loadgen",
            "--target",
            "http://127.0.0.1:1",
            "--stages",
            "soon",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(i32::from(EXIT_UNUSABLE)));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DURATION:TARGET"));
}

/// The binary: Ctrl-C stops a run early, and it still prints and writes its report and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_gracefully_and_still_reports() {
    let app = TestApp::sqlite().await;
    let shop = serve_shop(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let target = format!("http://{}", shop.addr);
    let json_path = json.clone();
    let (status, stdout) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_doorbuster"))
            .args([
                "loadgen",
                "--target",
                &target,
                "--users",
                "3",
                "--duration",
                "60s",
            ])
            .args(["--progress-interval", "100ms", "--json"])
            .arg(&json_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = String::new();
        // The first progress line says the crowd is in the shop.
        for line in lines.by_ref() {
            let line = line.unwrap();
            stdout.push_str(&line);
            stdout.push('\n');
            if line.starts_with('[') {
                break;
            }
        }
        let interrupted = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(interrupted.success());
        let rest = std::thread::spawn(move || {
            lines
                .map_while(Result::ok)
                .fold(String::new(), |text, line| text + &line + "\n")
        });
        // Bounded: the run itself would last a minute.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                stdout.push_str(&rest.join().unwrap());
                return (status, stdout);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("loadgen did not stop after Ctrl-C:\n{stdout}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    shop.stop().await;

    assert_eq!(status.code(), Some(i32::from(EXIT_PASSED)), "{stdout}");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["stopped_by"], "interrupted");
    assert!(report["requests"].as_u64().unwrap() > 0);
    assert_eq!(report["steps"].as_array().unwrap().len(), 6);
}
