//! Probes. `/healthz` answers whether the process is alive (it never touches the database, so a
//! database outage does not get healthy pods restarted); `/readyz` answers whether this replica
//! should receive traffic: not draining, not switched off, and a store that can take orders (see
//! [`crate::db::Db::readiness`]: a fault that real calls met, such as a full disk, a read-only or
//! deleted file or an unreachable server, makes it false with the reason in its body; being busy
//! never does).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::RETRY_AFTER_SECONDS;
use crate::web::state::AppState;

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
    // The store logs each fault once, when it starts and when it clears; nothing is logged here,
    // so a probe every few seconds does not repeat it.
    match state.db.readiness().await {
        Ok(()) => Json(json!({ "status": "ready", "database": engine })).into_response(),
        Err(reason) => not_ready(json!({
            "status": "database unavailable",
            "reason": reason,
            "database": engine,
        })),
    }
}

fn not_ready(body: serde_json::Value) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}
