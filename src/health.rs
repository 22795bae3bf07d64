//! Probes. `/healthz` answers whether the process is alive (it never touches the database, so a
//! database outage does not get healthy pods restarted); `/readyz` answers whether this replica
//! should receive traffic: not draining, and the database answering within a short timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::RETRY_AFTER_SECONDS;
use crate::state::AppState;

/// How long `/readyz` waits for the database before calling it down.
pub const READY_DB_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared readiness flags.
#[derive(Clone, Debug, Default)]
pub struct Health {
    draining: Arc<AtomicBool>,
    /// Set through the admin API to show a pod going unready without stopping it.
    switched_off: Arc<AtomicBool>,
}

impl Health {
    /// Marks the process as shutting down: `/readyz` fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The operator's readiness switch (admin API): `false` makes `/readyz` fail.
    pub fn set_ready(&self, ready: bool) {
        self.switched_off.store(!ready, Ordering::SeqCst);
    }

    pub fn is_switched_off(&self) -> bool {
        self.switched_off.load(Ordering::SeqCst)
    }
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let engine = state.db.engine().as_str();
    if state.health.is_draining() {
        return not_ready(json!({ "status": "draining", "database": engine }));
    }
    if state.health.is_switched_off() {
        return not_ready(json!({ "status": "switched off by the operator", "database": engine }));
    }
    match tokio::time::timeout(READY_DB_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Json(json!({ "status": "ready", "database": engine })).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check: database error");
            not_ready(json!({ "status": "database unavailable", "database": engine }))
        }
        Err(_) => {
            tracing::warn!("readiness check: database did not answer within {READY_DB_TIMEOUT:?}");
            not_ready(json!({ "status": "database timeout", "database": engine }))
        }
    }
}

fn not_ready(body: serde_json::Value) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}
