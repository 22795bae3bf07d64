//! The OpenAPI 3.1 description of `/api`, served at `/api/openapi.json`.
//!
//! Written by hand (it is small) and kept honest by tests: every route in [`super::routes`] must be
//! listed here, and the integration tests check responses against these schemas' required fields.

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};

use super::{DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE};
use crate::cart::{MAX_LINES, MAX_QUANTITY};

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

pub async fn document() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// The document, for tests and tools.
pub fn spec() -> &'static Value {
    &DOCUMENT
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Doorbuster API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Black Friday storefront's JSON API: browse the catalog, check out, read orders. Money is integer US cents. Errors are RFC 9457 problem documents whose `detail` says what to fix."
        },
        "paths": {
            "/api/categories": {
                "get": {
                    "operationId": "listCategories",
                    "summary": "All categories, in shop order",
                    "responses": {
                        "200": ok("The categories", "CategoryList"),
                        "503": problem("The database is unavailable; retry after Retry-After seconds")
                    }
                }
            },
            "/api/products": {
                "get": {
                    "operationId": "listProducts",
                    "summary": "A page of products, optionally within one category",
                    "parameters": [
                        { "name": "category", "in": "query", "required": false, "schema": { "type": "string" }, "description": "A category slug from /api/categories" },
                        { "name": "sort", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/Sort" } },
                        { "name": "page", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1 } },
                        { "name": "per_page", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE } }
                    ],
                    "responses": {
                        "200": ok("One page of products", "ProductList"),
                        "400": problem("Malformed or unknown query parameters"),
                        "404": problem("No such category"),
                        "422": problem("page or per_page out of range"),
                        "503": problem("The database is unavailable")
                    }
                }
            },
            "/api/products/{id_or_slug}": {
                "get": {
                    "operationId": "getProduct",
                    "summary": "One product by numeric id or slug",
                    "parameters": [
                        { "name": "id_or_slug", "in": "path", "required": true, "schema": { "type": "string" } }
                    ],
                    "responses": {
                        "200": ok("The product", "Product"),
                        "404": problem("No such product"),
                        "503": problem("The database is unavailable")
                    }
                }
            },
            "/api/checkout": {
                "post": {
                    "operationId": "checkout",
                    "summary": "Place an order",
                    "description": "Stock is taken and the order written in one transaction. Send an Idempotency-Key to make retries safe: a retry with the same key and body returns the first order.",
                    "parameters": [
                        { "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "minLength": 1, "maxLength": 255 } }
                    ],
                    "requestBody": {
                        "required": true,
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CheckoutRequest" } } }
                    },
                    "responses": {
                        "201": {
                            "description": "The order (new, or the first one for a replayed Idempotency-Key)",
                            "headers": {
                                "Location": { "schema": { "type": "string" }, "description": "/api/orders/{id}" },
                                "Idempotent-Replayed": { "schema": { "type": "string", "enum": ["true"] }, "description": "Present when this is a replay" }
                            },
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } }
                        },
                        "400": problem("Malformed JSON or Idempotency-Key"),
                        "409": problem("Not enough stock; `shortages` lists the products"),
                        "413": problem("Body too large"),
                        "415": problem("Body is not application/json"),
                        "422": problem("Invalid fields (listed in `errors`), unknown products, or an Idempotency-Key reused with a different body"),
                        "503": problem("The database is unavailable; nothing was ordered")
                    }
                }
            },
            "/api/orders/{id}": {
                "get": {
                    "operationId": "getOrder",
                    "summary": "One order by its number",
                    "parameters": [
                        { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }
                    ],
                    "responses": {
                        "200": ok("The order", "Order"),
                        "404": problem("No such order"),
                        "503": problem("The database is unavailable")
                    }
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": { "200": { "description": "OpenAPI 3.1 document", "content": { "application/json": { "schema": { "type": "object" } } } } }
                }
            }
        },
        "components": {
            "schemas": {
                "Sort": { "type": "string", "enum": ["featured", "price-asc", "price-desc", "rating", "discount"], "default": "featured" },
                "Category": {
                    "type": "object",
                    "required": ["slug", "name", "tagline", "product_count", "url"],
                    "properties": {
                        "slug": { "type": "string" },
                        "name": { "type": "string" },
                        "tagline": { "type": "string" },
                        "product_count": { "type": "integer", "minimum": 0 },
                        "url": { "type": "string", "description": "The category's page" }
                    }
                },
                "CategoryList": {
                    "type": "object",
                    "required": ["categories"],
                    "properties": { "categories": { "type": "array", "items": { "$ref": "#/components/schemas/Category" } } }
                },
                "Product": {
                    "type": "object",
                    "required": ["id", "slug", "category", "name", "description", "price_cents", "list_price_cents", "stock", "rating", "review_count", "doorbuster", "discount_percent", "stock_state", "image_url", "url"],
                    "properties": {
                        "id": { "type": "integer" },
                        "slug": { "type": "string" },
                        "category": { "type": "string" },
                        "name": { "type": "string" },
                        "description": { "type": "string" },
                        "price_cents": { "type": "integer", "minimum": 0 },
                        "list_price_cents": { "type": "integer", "minimum": 0 },
                        "stock": { "type": "integer", "minimum": 0 },
                        "rating": { "type": "number", "minimum": 0, "maximum": 5 },
                        "review_count": { "type": "integer", "minimum": 0 },
                        "doorbuster": { "type": "boolean" },
                        "discount_percent": { "type": "integer", "minimum": 0, "maximum": 100 },
                        "stock_state": { "type": "string", "enum": ["in_stock", "low", "sold_out"] },
                        "image_url": { "type": "string" },
                        "url": { "type": "string" }
                    }
                },
                "ProductList": {
                    "type": "object",
                    "required": ["items", "total", "page", "per_page"],
                    "properties": {
                        "items": { "type": "array", "items": { "$ref": "#/components/schemas/Product" } },
                        "total": { "type": "integer", "minimum": 0 },
                        "page": { "type": "integer", "minimum": 1 },
                        "per_page": { "type": "integer", "minimum": 1 }
                    }
                },
                "Customer": {
                    "type": "object",
                    "required": ["name", "email", "address", "city", "postal_code", "country"],
                    "properties": {
                        "name": { "type": "string", "maxLength": 100 },
                        "email": { "type": "string", "maxLength": 254 },
                        "address": { "type": "string", "maxLength": 200 },
                        "city": { "type": "string", "maxLength": 100 },
                        "postal_code": { "type": "string", "maxLength": 20 },
                        "country": { "type": "string", "maxLength": 60 }
                    }
                },
                "CheckoutRequest": {
                    "type": "object",
                    "required": ["items", "customer"],
                    "additionalProperties": false,
                    "properties": {
                        "items": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_LINES,
                            "items": {
                                "type": "object",
                                "required": ["product_id", "quantity"],
                                "additionalProperties": false,
                                "properties": {
                                    "product_id": { "type": "integer", "minimum": 1 },
                                    "quantity": { "type": "integer", "minimum": 1, "maximum": MAX_QUANTITY }
                                }
                            }
                        },
                        "customer": { "$ref": "#/components/schemas/Customer" }
                    }
                },
                "OrderLine": {
                    "type": "object",
                    "required": ["product_id", "product_name", "unit_price_cents", "quantity"],
                    "properties": {
                        "product_id": { "type": "integer" },
                        "product_name": { "type": "string" },
                        "unit_price_cents": { "type": "integer", "minimum": 0 },
                        "quantity": { "type": "integer", "minimum": 1 }
                    }
                },
                "Order": {
                    "type": "object",
                    "required": ["id", "customer", "lines", "item_count", "total_cents", "created_at", "url"],
                    "properties": {
                        "id": { "type": "string", "description": "The order number" },
                        "customer": { "$ref": "#/components/schemas/Customer" },
                        "lines": { "type": "array", "items": { "$ref": "#/components/schemas/OrderLine" } },
                        "item_count": { "type": "integer", "minimum": 1 },
                        "total_cents": { "type": "integer", "minimum": 0 },
                        "created_at": { "type": "string", "format": "date-time" },
                        "url": { "type": "string", "description": "The order's confirmation page" }
                    }
                },
                "FieldError": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": { "field": { "type": "string" }, "message": { "type": "string" } }
                },
                "Shortage": {
                    "type": "object",
                    "required": ["product_id", "name", "requested", "available"],
                    "properties": {
                        "product_id": { "type": "integer" },
                        "name": { "type": "string" },
                        "requested": { "type": "integer" },
                        "available": { "type": "integer" }
                    }
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "errors": { "type": "array", "items": { "$ref": "#/components/schemas/FieldError" } },
                        "shortages": { "type": "array", "items": { "$ref": "#/components/schemas/Shortage" } }
                    }
                }
            }
        }
    })
}
