//! Probes: liveness never depends on the database; readiness does, and turns false on drain.

use axum::http::StatusCode;

use crate::support::db_tests;

db_tests! {
    /// /healthz and /readyz answer 200 on a healthy shop; draining makes only /readyz fail.
    async fn probes_report_health_and_readiness(app) {
        let health = app.get("/healthz").await;
        assert_eq!(health.status, StatusCode::OK);
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status, StatusCode::OK);
        let engine = ready.json()["database"].as_str().unwrap().to_owned();
        assert!(engine == "sqlite" || engine == "postgresql");

        app.state.health.start_draining();
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.json()["status"], "draining");
        assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
        // Still serving while draining, but asking clients to reconnect elsewhere.
        let page = app.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header("connection"), "close");
    }
}

/// The footer names the replica (POD_NAME) and node (NODE_NAME) that served the page, so
/// refreshing shows load spreading across pods and onto the virtual node.
#[tokio::test]
async fn footer_shows_the_serving_pod_and_node() {
    use doorbuster::config::WebConfig;
    use doorbuster::web::state::AppState;

    let app = crate::support::TestApp::sqlite().await;
    let config = WebConfig {
        instance: "doorbuster-7d9c5-x2kq".to_owned(),
        node: Some("virtual-node-aci-linux".to_owned()),
        ..WebConfig::default()
    };
    let state = AppState::with_metrics(app.state.db.clone(), config, app.state.metrics.clone());
    let app = app.with_state(state);
    let html = app.get("/").await.text();
    assert!(
        html.contains("Served by <strong>doorbuster-7d9c5-x2kq on virtual-node-aci-linux</strong>"),
        "{html}"
    );
}

/// The probes carry the same security headers as every other response (once each), healthy,
/// not ready and draining alike, although they sit outside the traced and timed layer stack.
#[tokio::test]
async fn probes_carry_the_security_headers() {
    let app = crate::support::TestApp::sqlite().await;
    let mut responses = vec![
        ("/healthz", app.get("/healthz").await),
        ("/readyz", app.get("/readyz").await),
    ];
    app.state.health.start_draining();
    responses.push(("/readyz while draining", app.get("/readyz").await));
    for (what, response) in responses {
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
            ("x-frame-options", "DENY"),
            ("cross-origin-opener-policy", "same-origin"),
            (
                "content-security-policy",
                doorbuster::web::CONTENT_SECURITY_POLICY,
            ),
        ] {
            assert_eq!(response.header(name), value, "{what} {name}");
            assert_eq!(
                response.headers.get_all(name).iter().count(),
                1,
                "{what} {name}"
            );
        }
    }
}
