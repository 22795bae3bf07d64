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
