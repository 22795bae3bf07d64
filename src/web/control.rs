//! The runtime control API, on the admin listener only (never the public port): read and change
//! the load-target knobs and switch readiness, to show a pod going unready or a slow dependency
//! in the middle of a demo. Every call needs `Authorization: Bearer $DOORBUSTER_ADMIN_TOKEN`;
//! without a configured token, the API refuses and says how to enable it. Every change is logged
//! and counted (`doorbuster_control_changes_total`).
//!
//! ```sh
//! curl -H "Authorization: Bearer $TOKEN" localhost:9090/control
//! curl -X PUT -H "Authorization: Bearer $TOKEN" localhost:9090/control \
//!      -d '{"pages": {"cpu_ms": 10}, "checkout": {"latency_min_ms": 200, "latency_max_ms": 400}}'
//! curl -X PUT -H "Authorization: Bearer $TOKEN" localhost:9090/control/ready -d '{"ready": false}'
//! ```

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};

use super::extract::ApiJson;
use crate::error::{ApiError, Problem};
use crate::load::Knobs;
use crate::web::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/control", get(read).put(change))
        .route("/control/ready", put(switch_readiness))
}

#[derive(Debug, Serialize)]
struct ControlState {
    knobs: Knobs,
    ready: bool,
    draining: bool,
    in_flight: usize,
    max_in_flight: usize,
    instance: String,
}

fn snapshot(state: &AppState) -> ControlState {
    ControlState {
        knobs: state.controls.knobs(),
        ready: !state.health.is_switched_off(),
        draining: state.health.is_draining(),
        in_flight: state.controls.in_flight(),
        max_in_flight: state.controls.max_in_flight(),
        instance: state.config.instance.clone(),
    }
}

/// Checks the bearer token (see [`token_matches`]); returns the refusal to send when it does not
/// match.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &state.config.admin_token else {
        return Some(Problem::for_status(
            StatusCode::FORBIDDEN,
            "Runtime control is disabled. Start the server with DOORBUSTER_ADMIN_TOKEN=<secret> \
             and send 'Authorization: Bearer <secret>'.",
        )
        .into_response_with_status());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or_default();
    if token_matches(given.as_bytes(), expected.0.as_bytes()) {
        return None;
    }
    let mut response = Problem::for_status(
        StatusCode::UNAUTHORIZED,
        "Send 'Authorization: Bearer <token>' with the token from DOORBUSTER_ADMIN_TOKEN.",
    )
    .into_response_with_status();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// The token of `Authorization: Bearer <token>`. The scheme is case-insensitive and followed by
/// one or more spaces (RFC 7235, 2.1), so `bearer` from a hand-written curl counts.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Whether `given` is the token, in a time that depends on the expected token's length only: a
/// comparison that stops at the first wrong byte, or at a wrong length, tells a client measuring
/// answers how much of its guess was right. Every expected byte is compared with the given byte
/// at its position (zero past the given token's end), and the length difference is folded in.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        diff |= usize::from(given.get(index).copied().unwrap_or(0) ^ byte);
    }
    // Keeps the optimiser from turning the fold back into an early return.
    std::hint::black_box(diff) == 0
}

async fn read(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    Json(snapshot(&state)).into_response()
}

async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<Knobs>, ApiError>,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    // The body is read only after the token is checked: strangers learn nothing about it.
    let knobs = match body {
        Ok(ApiJson(knobs)) => knobs,
        Err(rejection) => return rejection.into_response(),
    };
    if let Err(reason) = state.controls.set_knobs(knobs) {
        return Problem::for_status(StatusCode::UNPROCESSABLE_ENTITY, format!("{reason}."))
            .into_response_with_status();
    }
    tracing::info!(?knobs, "control: load-target knobs changed");
    state.metrics.control_changes.add(
        1,
        &[KeyValue::new("control", crate::metrics::CONTROL_KNOBS)],
    );
    Json(snapshot(&state)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Readiness {
    ready: bool,
}

async fn switch_readiness(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<Readiness>, ApiError>,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let ready = match body {
        Ok(ApiJson(Readiness { ready })) => ready,
        Err(rejection) => return rejection.into_response(),
    };
    state.health.set_ready(ready);
    tracing::info!(ready, "control: readiness switched");
    state.metrics.control_changes.add(
        1,
        &[KeyValue::new("control", crate::metrics::CONTROL_READINESS)],
    );
    Json(snapshot(&state)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        for wrong in [
            &b""[..],
            b"s3cre",
            b"s3cret!",
            b"S3cret",
            b"s3cres",
            b"s3cret\0",
        ] {
            assert!(!token_matches(wrong, b"s3cret"), "{wrong:?}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
