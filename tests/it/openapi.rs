//! The OpenAPI document describes every API route, and the API's answers have the documented shape.

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{TestApp, checkout_body};

/// Every route the API router serves is in /api/openapi.json with its method, and nothing else is.
#[tokio::test]
async fn every_api_route_is_documented() {
    let app = TestApp::sqlite().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK);
    let spec = response.json();
    assert_eq!(spec["openapi"], "3.1.0");
    let routes = doorbuster::web::api::routes().documented;
    assert!(routes.len() >= 6);
    for (method, path) in &routes {
        let operation = &spec["paths"][*path][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is missing from the OpenAPI document"
        );
        assert!(operation["responses"].is_object());
    }
    let documented: usize = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "the document lists only routes that exist"
    );
}

/// Responses carry every property their schema requires (a light check; schemathesis does more).
#[tokio::test]
async fn responses_have_the_documented_required_fields() {
    let app = TestApp::sqlite().await;
    let spec = doorbuster::web::api::openapi::spec();
    let schema = |name: &str| &spec["components"]["schemas"][name];
    let products = app.get("/api/products").await.json();
    assert_required(&products, schema("ProductList"));
    assert_required(&products["items"][0], schema("Product"));
    let categories = app.get("/api/categories").await.json();
    assert_required(&categories["categories"][0], schema("Category"));
    let id = products["items"][0]["id"].as_i64().unwrap();
    let order = app
        .post_json("/api/checkout", &checkout_body(&[(id, 1)]))
        .await
        .json();
    assert_required(&order, schema("Order"));
    assert_required(&order["lines"][0], schema("OrderLine"));
    let problem = app.get("/api/products/0").await.json();
    assert_required(&problem, schema("Problem"));
}

fn assert_required(value: &Value, schema: &Value) {
    let properties = schema["properties"].as_object().unwrap();
    for field in schema["required"].as_array().unwrap() {
        let field = field.as_str().unwrap();
        assert!(value.get(field).is_some(), "missing {field} in {value}");
    }
    for key in value.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(key),
            "{key} is not documented: {value}"
        );
    }
}
