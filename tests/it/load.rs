//! Load-target controls: CPU work, latency and error injection per route group, the admin control
//! API and its token, and overload shedding that leaves probes alone.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use doorbuster::config::{Secret, WebConfig};
use doorbuster::load::{Controls, Cost, Knobs};
use doorbuster::metrics::process_cpu_seconds;
use doorbuster::server;
use doorbuster::web::state::AppState;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{TestApp, TestResponse};

/// The app with these knobs, an in-flight bound and (optionally) an admin token.
async fn app_with(knobs: Knobs, max_in_flight: usize, token: Option<&str>) -> (TestApp, AppState) {
    let (app, state) = build(knobs, max_in_flight, token).await;
    (app.with_state(state.clone()), state)
}

async fn build(knobs: Knobs, max_in_flight: usize, token: Option<&str>) -> (TestApp, AppState) {
    let app = TestApp::sqlite().await;
    let config = WebConfig {
        admin_token: token.map(|t| Secret(t.to_owned())),
        ..WebConfig::default()
    };
    let state = AppState::with_controls(
        app.state.db.clone(),
        config,
        app.state.metrics.clone(),
        Controls::new(knobs, max_in_flight, Some(42)),
    );
    (app, state)
}

async fn get(state: impl std::borrow::Borrow<AppState>, uri: &str) -> (StatusCode, Duration) {
    use tower::ServiceExt;
    let started = Instant::now();
    let response = doorbuster::web::router(state.borrow().clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    (response.status(), started.elapsed())
}

fn pages(cost: Cost) -> Knobs {
    Knobs {
        pages: cost,
        ..Knobs::default()
    }
}

/// With N ms of CPU work per page request, the process's CPU time per request rises by about N ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_work_costs_cpu_time() {
    // The process's CPU time must be this test's alone.
    if !crate::support::own_process("load::cpu_work_costs_cpu_time") {
        return;
    }
    let (_app, plain) = app_with(Knobs::default(), 100, None).await;
    let (_app2, costly) = app_with(
        pages(Cost {
            cpu_ms: 20.0,
            ..Cost::default()
        }),
        100,
        None,
    )
    .await;
    let per_request = |state: AppState| async move {
        let before = process_cpu_seconds().unwrap();
        for _ in 0..20 {
            assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
            assert_eq!(get(&state, "/cart").await.0, StatusCode::OK);
        }
        (process_cpu_seconds().unwrap() - before) / 20.0
    };
    let base = per_request(plain).await;
    let with_work = per_request(costly).await;
    let added_ms = (with_work - base) * 1000.0;
    // Generous: CPU accounting ticks at 10 ms and the test itself uses some CPU.
    assert!(
        (14.0..=40.0).contains(&added_ms),
        "added {added_ms:.1} ms per request"
    );
    // Probes and static assets are never charged.
    let (_app3, all) = app_with(
        pages(Cost {
            cpu_ms: 200.0,
            ..Cost::default()
        }),
        100,
        None,
    )
    .await;
    assert!(get(&all, "/healthz").await.1 < Duration::from_millis(150));
}

/// Latency injection delays responses by the configured amount, per route group.
#[tokio::test]
async fn latency_injection_delays_responses() {
    let knobs = Knobs {
        api: Cost {
            latency_min_ms: 120.0,
            latency_max_ms: 120.0,
            ..Cost::default()
        },
        pages: Cost {
            latency_min_ms: 50.0,
            latency_max_ms: 80.0,
            ..Cost::default()
        },
        ..Knobs::default()
    };
    let (_app, state) = app_with(knobs, 100, None).await;
    let (status, took) = get(&state, "/api/categories").await;
    assert_eq!(status, StatusCode::OK);
    assert!(took >= Duration::from_millis(120), "{took:?}");
    for _ in 0..5 {
        let (_, took) = get(&state, "/").await;
        assert!(took >= Duration::from_millis(50), "{took:?}");
    }
    assert!(
        get(&state, "/healthz").await.1 < Duration::from_millis(50),
        "probes are not delayed"
    );
}

/// Error injection gives the configured fraction over many requests, both 500 and 503.
#[tokio::test]
async fn error_injection_gives_the_configured_fraction() {
    let knobs = Knobs {
        api: Cost {
            error_rate: 0.2,
            ..Cost::default()
        },
        ..Knobs::default()
    };
    let (_app, state) = app_with(knobs, 100, None).await;
    let mut counts = std::collections::HashMap::new();
    for _ in 0..1000 {
        *counts
            .entry(get(&state, "/api/openapi.json").await.0.as_u16())
            .or_insert(0) += 1;
    }
    let failed = counts.get(&500).unwrap_or(&0) + counts.get(&503).unwrap_or(&0);
    // Binomial(1000, 0.2): mean 200, sd ~12.6; ±5 sd.
    assert!((137..=263).contains(&failed), "{counts:?}");
    assert!(
        counts.get(&500).unwrap_or(&0) > &50 && counts.get(&503).unwrap_or(&0) > &50,
        "{counts:?}"
    );
    assert_eq!(
        get(&state, "/").await.0,
        StatusCode::OK,
        "pages are not affected"
    );
}

async fn http_get(url: String) -> reqwest::Response {
    let client = doorbuster::tls::client_builder().build().unwrap();
    client.get(url).send().await.unwrap()
}

async fn admin_call(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let client = doorbuster::tls::client_builder().build().unwrap();
    let mut request = client.request(method, format!("{admin}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The control API lives on the admin port only, needs the token, and changes knobs and readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_needs_the_token_and_is_admin_only() {
    for token in [None, Some("s3cret-token")] {
        let (_app, state) = app_with(Knobs::default(), 100, token).await;
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public_url = format!("http://{}", public.local_addr().unwrap());
        let admin_url = format!("http://{}", admin.local_addr().unwrap());
        let stop = CancellationToken::new();
        let shop = tokio::spawn(server::serve(
            public,
            state.clone(),
            Duration::ZERO,
            stop.clone().cancelled_owned(),
        ));
        let admin_server = tokio::spawn(server::serve_admin(admin, state.clone(), stop.clone()));

        let change = r#"{"pages": {"latency_min_ms": 1, "latency_max_ms": 2}}"#;
        let (status, _) =
            admin_call(&public_url, reqwest::Method::GET, "/control", token, None).await;
        assert_eq!(status, 404, "no control API on the public port");
        match token {
            None => {
                let (status, body) = admin_call(
                    &admin_url,
                    reqwest::Method::PUT,
                    "/control",
                    Some("guess"),
                    Some(change),
                )
                .await;
                assert_eq!(status, 403);
                assert!(
                    body.contains("DOORBUSTER_ADMIN_TOKEN"),
                    "says how to enable it: {body}"
                );
            }
            Some(token) => {
                assert_eq!(
                    admin_call(
                        &admin_url,
                        reqwest::Method::PUT,
                        "/control",
                        None,
                        Some(change)
                    )
                    .await
                    .0,
                    401
                );
                assert_eq!(
                    admin_call(
                        &admin_url,
                        reqwest::Method::PUT,
                        "/control",
                        Some("s3cret-tokem"),
                        Some(change)
                    )
                    .await
                    .0,
                    401
                );
                let (status, body) = admin_call(
                    &admin_url,
                    reqwest::Method::PUT,
                    "/control",
                    Some(token),
                    Some(change),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(state.controls.knobs().pages.latency_max_ms, 2.0);
                let bad = r#"{"api": {"error_rate": 3}}"#;
                assert_eq!(
                    admin_call(
                        &admin_url,
                        reqwest::Method::PUT,
                        "/control",
                        Some(token),
                        Some(bad)
                    )
                    .await
                    .0,
                    422
                );

                let (status, _) = admin_call(
                    &admin_url,
                    reqwest::Method::PUT,
                    "/control/ready",
                    Some(token),
                    Some(r#"{"ready": false}"#),
                )
                .await;
                assert_eq!(status, 200);
                let ready = http_get(format!("{public_url}/readyz")).await;
                assert_eq!(ready.status(), 503);
                admin_call(
                    &admin_url,
                    reqwest::Method::PUT,
                    "/control/ready",
                    Some(token),
                    Some(r#"{"ready": true}"#),
                )
                .await;
                assert_eq!(http_get(format!("{public_url}/readyz")).await.status(), 200);
                let metrics = http_get(format!("{admin_url}/metrics"))
                    .await
                    .text()
                    .await
                    .unwrap();
                assert!(
                    metrics.contains("doorbuster_control_changes_total"),
                    "changes are counted"
                );
            }
        }
        stop.cancel();
        shop.await.unwrap().unwrap();
        admin_server.await.unwrap().unwrap();
    }
}

/// With an in-flight bound of K and slow requests, request K+1 gets 503 with Retry-After at once,
/// while /healthz still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_probes_still_answer() {
    let knobs = pages(Cost {
        latency_min_ms: 600.0,
        latency_max_ms: 600.0,
        ..Cost::default()
    });
    let (app, state) = app_with(knobs, 2, None).await;
    let router = app.router.clone();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                use tower::ServiceExt;
                router
                    .oneshot(Request::get("/").body(Body::empty()).unwrap())
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(state.controls.in_flight(), 2);
    let started = Instant::now();
    let shed: TestResponse = app.get("/api/products").await;
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "answered at once"
    );
    shed.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.header("retry-after"), "1");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    for task in slow {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        app.get("/api/products").await.status,
        StatusCode::OK,
        "admitted again once slots free up"
    );
    let metrics = state.metrics.prometheus_text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("doorbuster_requests_shed_total") && l.ends_with(" 1")),
        "{metrics}"
    );
}

/// The control API's token check takes the `Bearer` scheme in any case (RFC 7235) and only the
/// exact token: a prefix of it, a longer one, another case or another scheme is refused.
#[tokio::test]
async fn control_token_takes_any_case_of_bearer_and_only_the_exact_token() {
    use tower::ServiceExt;
    let (_app, state) = app_with(Knobs::default(), 100, Some("s3cret-token")).await;
    let status = |authorization: &'static str| {
        let router = doorbuster::web::admin_router(state.clone());
        async move {
            let request = Request::get("/control")
                .header("authorization", authorization)
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }
    };
    for accepted in [
        "Bearer s3cret-token",
        "bearer s3cret-token",
        "BEARER s3cret-token",
        "bEaReR  s3cret-token",
    ] {
        assert_eq!(status(accepted).await, StatusCode::OK, "{accepted}");
    }
    for refused in [
        "Bearer s3cret-toke",
        "Bearer s3cret-token0",
        "Bearer s3cret-token s3cret-token",
        "Bearer S3CRET-TOKEN",
        "Bearer ",
        "Bearer",
        "s3cret-token",
        "Bearers3cret-token",
        "Basic s3cret-token",
    ] {
        assert_eq!(status(refused).await, StatusCode::UNAUTHORIZED, "{refused}");
    }
}

/// CPU work never runs where the runtime's own tasks do: with more requests burning a second of
/// CPU each than there are worker threads, `/healthz`, `/readyz` and the admin API still answer
/// at once (when the burn ran on the workers, they waited for it), and `/readyz` stays ready:
/// busy is not broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_knob_never_stalls_probes_or_the_admin_api() {
    let knobs = pages(Cost {
        cpu_ms: 1000.0,
        ..Cost::default()
    });
    let (app, state) = app_with(knobs, 100, None).await;
    let burning: Vec<_> = (0..4)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(get(state, "/cart"))
        })
        .collect();
    // A thread's sleep, not the runtime's: with the burn on the workers, nothing drove the
    // runtime's timers either.
    std::thread::sleep(Duration::from_millis(100));
    // Each probe is a task on the runtime's workers, as a server's connections are (the test's
    // own body runs on a thread of its own), timed from before it is spawned.
    for uri in ["/healthz", "/readyz"] {
        let started = Instant::now();
        let (status, _) = tokio::spawn(get(state.clone(), uri)).await.unwrap();
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(took < Duration::from_millis(500), "{uri} took {took:?}");
    }
    let admin = state.clone();
    let started = Instant::now();
    let status = tokio::spawn(async move {
        use tower::ServiceExt;
        doorbuster::web::admin_router(admin)
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(took < Duration::from_millis(500), "/metrics took {took:?}");
    for request in burning {
        assert_eq!(request.await.unwrap().0, StatusCode::OK);
    }
    drop(app);
}

/// The request timeout ends a burn: a page asked to burn a second, with a 200 ms request
/// timeout, is answered 503 within a fraction of that second (the burn used to run to its end,
/// and the page was then served late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_ends_a_burn() {
    let app = TestApp::sqlite().await;
    let config = WebConfig {
        request_timeout: Duration::from_millis(200),
        ..WebConfig::default()
    };
    let knobs = pages(Cost {
        cpu_ms: 1000.0,
        ..Cost::default()
    });
    let state = AppState::with_controls(
        app.state.db.clone(),
        config,
        app.state.metrics.clone(),
        Controls::new(knobs, 100, None),
    );
    let (status, took) = get(&state, "/cart").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(800), "answered after {took:?}");
}

/// One request may burn at most a second of CPU: the control API refuses more with a 422 that
/// gives the limit, and so does the start-up setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_work_above_a_second_is_refused_with_the_limit() {
    let (_app, state) = app_with(Knobs::default(), 100, Some("t0ken")).await;
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let stop = CancellationToken::new();
    let admin_server = tokio::spawn(server::serve_admin(admin, state.clone(), stop.clone()));
    let (status, body) = admin_call(
        &admin_url,
        reqwest::Method::PUT,
        "/control",
        Some("t0ken"),
        Some(r#"{"pages": {"cpu_ms": 10000}}"#),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("1000 ms"), "{body}");
    assert_eq!(state.controls.knobs(), Knobs::default(), "nothing changed");
    stop.cancel();
    admin_server.await.unwrap().unwrap();

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorbuster"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--admin-port",
            "0",
        ])
        .env("DATABASE_URL", "sqlite::memory:")
        .env("DOORBUSTER_CPU_WORK", "pages=10s")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1000 ms"), "{stderr}");
}
