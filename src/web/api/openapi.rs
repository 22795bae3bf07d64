//! The OpenAPI 3.1 description of `/api`, served at `/api/openapi.json`.
//!
//! Written by hand (it is small) and kept honest by tests: every route in [`super::routes`] must be
//! listed here, the integration tests check responses against these schemas' fields and prove the
//! customer fields' patterns accept exactly what checkout accepts, and `scripts/schemathesis`
//! sends generated requests (valid and invalid) and checks every answer against the document.
//!
//! The document is meant to be exact in both directions: a request it calls valid is accepted
//! unless the data says otherwise (an unknown product, stock), one it calls invalid is refused,
//! and responses carry exactly the documented properties (`additionalProperties: false`).

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};

use super::{DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE};
use crate::shop::cart::{MAX_LINES, MAX_QUANTITY};
use crate::shop::checkout::MAX_IDEMPOTENCY_KEY_LEN;
use crate::shop::order::{ORDER_ID_ALPHABET, ORDER_ID_LEN};

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

pub async fn document() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// The document, for tests and tools.
pub fn spec() -> &'static Value {
    &DOCUMENT
}

/// Characters `str::trim` removes (Unicode `White_Space`, as `char::is_whitespace`), as the body
/// of a regular-expression character class.
const WHITESPACE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Characters checkout refuses inside a field (Unicode `Cc`, as `char::is_control`).
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// A customer text field as checkout validates it: surrounding whitespace is trimmed, and what is
/// left must be 1 to `max` characters with no control characters. The pattern says exactly that,
/// length included (a `maxLength` would count the trimmed whitespace too).
fn text_field(max: usize, description: &str) -> Value {
    let ends = format!("[^{WHITESPACE}{CONTROL}]");
    let pattern = format!(
        "^[{WHITESPACE}]*(?:{ends}|{ends}[^{CONTROL}]{{0,{inner}}}{ends})[{WHITESPACE}]*$",
        inner = max - 2
    );
    json!({ "type": "string", "pattern": pattern, "description": description })
}

/// The email field: as [`text_field`], and shaped like `name@example.com` (one `@`, something
/// before it, a dotted domain after it that neither starts nor ends with a dot, no whitespace).
/// The length is a `maxLength`, which also counts surrounding whitespace; checkout counts only
/// what is left after trimming, so it accepts a few padded values this schema does not.
fn email_field(max: usize) -> Value {
    let atom = format!("[^@{WHITESPACE}{CONTROL}]");
    let edge = format!("[^@.{WHITESPACE}{CONTROL}]");
    let pattern = format!("^[{WHITESPACE}]*{atom}+@{edge}{atom}*\\.{atom}*{edge}[{WHITESPACE}]*$");
    json!({
        "type": "string",
        "pattern": pattern,
        "maxLength": max,
        "description": format!("An address like name@example.com, at most {max} characters")
    })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// A 503: the database is unreachable, a request took too long, or the shop is at capacity. Every
/// API route can answer it (the timeout and the in-flight bound sit in front of all of them).
fn unavailable(description: &str) -> Value {
    let mut response = problem(description);
    response["headers"] = json!({
        "Retry-After": {
            "required": true,
            "description": "Seconds to wait before retrying",
            "schema": { "type": "integer", "minimum": 0 }
        }
    });
    response
}

/// `response` with OpenAPI links to operations its body supplies parameters for.
fn with_links(mut response: Value, links: Value) -> Value {
    response["links"] = links;
    response
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn build() -> Value {
    let order_id_pattern = format!(
        "^[{}]{{{ORDER_ID_LEN}}}$",
        String::from_utf8_lossy(ORDER_ID_ALPHABET)
    );
    let busy = "The database is unavailable, the request took too long, or the shop is at capacity; retry after Retry-After seconds";
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Doorbuster API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Black Friday storefront's JSON API: browse the catalog, check out, read orders. Money is integer US cents. Errors are RFC 9457 problem documents (`application/problem+json`) whose `detail` says what to fix. A method a path does not support is answered 405 with an `Allow` header."
        },
        "paths": {
            "/api/categories": {
                "get": {
                    "operationId": "listCategories",
                    "summary": "All categories, in shop order",
                    "responses": {
                        "200": with_links(
                            ok("The categories", "CategoryList"),
                            json!({
                                "listProductsOfCategory": {
                                    "operationId": "listProducts",
                                    "parameters": { "category": "$response.body#/categories/0/slug" },
                                    "description": "The products of the first category"
                                }
                            }),
                        ),
                        "503": unavailable(busy)
                    }
                }
            },
            "/api/products": {
                "get": {
                    "operationId": "listProducts",
                    "summary": "A page of products, optionally within one category",
                    "description": "Parameters other than these are refused with 400.",
                    "parameters": [
                        { "name": "category", "in": "query", "required": false, "schema": { "type": "string" }, "description": "A category slug from /api/categories" },
                        { "name": "sort", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/Sort" } },
                        { "name": "page", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1 } },
                        { "name": "per_page", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE } }
                    ],
                    "responses": {
                        "200": with_links(
                            ok("One page of products", "ProductList"),
                            json!({
                                "getFirstProduct": {
                                    "operationId": "getProduct",
                                    "parameters": { "id_or_slug": "$response.body#/items/0/slug" },
                                    "description": "The first product of the page"
                                }
                            }),
                        ),
                        "400": problem("Malformed, repeated or unknown query parameters, or an unknown sort"),
                        "404": problem("No such category"),
                        "422": problem("page or per_page out of range"),
                        "503": unavailable(busy)
                    }
                }
            },
            "/api/products/{id_or_slug}": {
                "get": {
                    "operationId": "getProduct",
                    "summary": "One product by numeric id or slug",
                    "parameters": [
                        { "name": "id_or_slug", "in": "path", "required": true, "schema": { "type": "string" }, "description": "A product's id or its slug" }
                    ],
                    "responses": {
                        "200": ok("The product", "Product"),
                        "400": problem("The path is not valid UTF-8 once percent-decoded"),
                        "404": problem("No such product"),
                        "503": unavailable(busy)
                    }
                }
            },
            "/api/checkout": {
                "post": {
                    "operationId": "checkout",
                    "summary": "Place an order",
                    "description": "Stock is taken and the order written in one transaction. Send an Idempotency-Key to make retries safe: a retry with the same key and body returns the first order. Lines naming the same product are merged; the merged quantity must stay within the per-product limit.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key", "in": "header", "required": false,
                            "schema": { "type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LEN, "pattern": "^[!-~]+$" },
                            "description": "Visible ASCII characters, such as a UUID",
                            "example": "5c1f0e4a-9b7d-4e2a-8c3f-1d6b0a9e7f21"
                        }
                    ],
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": {
                                "schema": { "$ref": "#/components/schemas/CheckoutRequest" },
                                "example": {
                                    "items": [{ "product_id": 1, "quantity": 1 }],
                                    "customer": { "name": "Ada Lovelace", "email": "ada@example.com", "address": "1 Loop Rd", "city": "Cambridge", "postal_code": "02139", "country": "US" }
                                }
                            }
                        }
                    },
                    "responses": {
                        "201": {
                            "description": "The order (new, or the first one for a replayed Idempotency-Key)",
                            "headers": {
                                "Location": { "required": true, "schema": { "type": "string", "format": "uri-reference" }, "description": "/api/orders/{id}" },
                                "Idempotent-Replayed": { "schema": { "type": "string", "enum": ["true"] }, "description": "Present when this is a replay" }
                            },
                            "links": {
                                "getOrder": {
                                    "operationId": "getOrder",
                                    "parameters": { "id": "$response.body#/id" },
                                    "description": "The order just placed"
                                }
                            },
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } }
                        },
                        "400": problem("Malformed JSON or Idempotency-Key"),
                        "409": problem("Not enough stock; `shortages` lists the products"),
                        "413": problem("Body too large"),
                        "415": problem("Body is not application/json"),
                        "422": problem("Invalid fields (listed in `errors`), unknown products, or an Idempotency-Key reused with a different body"),
                        "503": unavailable("The database is unavailable, the request took too long, or the shop is at capacity; nothing was ordered")
                    }
                }
            },
            "/api/orders/{id}": {
                "get": {
                    "operationId": "getOrder",
                    "summary": "One order by its number",
                    "parameters": [
                        { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": order_id_pattern }, "description": "The order number" }
                    ],
                    "responses": {
                        "200": ok("The order", "Order"),
                        "400": problem("The path is not valid UTF-8 once percent-decoded"),
                        "404": problem("No such order"),
                        "503": unavailable(busy)
                    }
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": { "description": "OpenAPI 3.1 document", "content": { "application/json": { "schema": { "type": "object" } } } },
                        "503": unavailable("The request took too long, or the shop is at capacity")
                    }
                }
            }
        },
        "components": {
            "schemas": {
                "Sort": { "type": "string", "enum": ["featured", "price-asc", "price-desc", "rating", "discount"], "default": "featured" },
                "Category": {
                    "type": "object",
                    "required": ["slug", "name", "tagline", "product_count", "url"],
                    "additionalProperties": false,
                    "properties": {
                        "slug": { "type": "string" },
                        "name": { "type": "string" },
                        "tagline": { "type": "string" },
                        "product_count": { "type": "integer", "minimum": 0 },
                        "url": { "type": "string", "format": "uri-reference", "description": "The category's page" }
                    }
                },
                "CategoryList": {
                    "type": "object",
                    "required": ["categories"],
                    "additionalProperties": false,
                    "properties": { "categories": { "type": "array", "items": { "$ref": "#/components/schemas/Category" } } }
                },
                "Product": {
                    "type": "object",
                    "required": ["id", "slug", "category", "name", "description", "price_cents", "list_price_cents", "stock", "rating", "review_count", "doorbuster", "discount_percent", "stock_state", "image_url", "url"],
                    "additionalProperties": false,
                    "properties": {
                        "id": { "type": "integer", "minimum": 1 },
                        "slug": { "type": "string" },
                        "category": { "type": "string", "description": "The category's slug" },
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
                        "image_url": { "type": "string", "format": "uri-reference" },
                        "url": { "type": "string", "format": "uri-reference", "description": "The product's page" }
                    }
                },
                "ProductList": {
                    "type": "object",
                    "required": ["items", "total", "page", "per_page"],
                    "additionalProperties": false,
                    "properties": {
                        "items": { "type": "array", "maxItems": MAX_PER_PAGE, "items": { "$ref": "#/components/schemas/Product" } },
                        "total": { "type": "integer", "minimum": 0 },
                        "page": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE },
                        "per_page": { "type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE }
                    }
                },
                "Customer": {
                    "type": "object",
                    "description": "Who the order ships to. Surrounding whitespace is trimmed; control characters are refused. Other properties are refused.",
                    "required": ["name", "email", "address", "city", "postal_code", "country"],
                    "additionalProperties": false,
                    "properties": {
                        "name": text_field(100, "At most 100 characters"),
                        "email": email_field(254),
                        "address": text_field(200, "Street address, at most 200 characters"),
                        "city": text_field(100, "At most 100 characters"),
                        "postal_code": text_field(20, "At most 20 characters"),
                        "country": text_field(60, "At most 60 characters")
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
                                    "product_id": { "type": "integer", "minimum": 1, "description": "A product id from /api/products" },
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
                    "additionalProperties": false,
                    "properties": {
                        "product_id": { "type": "integer", "minimum": 1 },
                        "product_name": { "type": "string" },
                        "unit_price_cents": { "type": "integer", "minimum": 0 },
                        "quantity": { "type": "integer", "minimum": 1, "maximum": MAX_QUANTITY }
                    }
                },
                "Order": {
                    "type": "object",
                    "required": ["id", "customer", "lines", "item_count", "total_cents", "created_at", "url"],
                    "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string", "pattern": order_id_pattern, "description": "The order number" },
                        // An order shows exactly the fields checkout stored (unlike a request,
                        // which may carry others that are ignored).
                        "customer": { "$ref": "#/components/schemas/Customer", "unevaluatedProperties": false },
                        "lines": { "type": "array", "minItems": 1, "maxItems": MAX_LINES, "items": { "$ref": "#/components/schemas/OrderLine" } },
                        "item_count": { "type": "integer", "minimum": 1 },
                        "total_cents": { "type": "integer", "minimum": 0 },
                        "created_at": { "type": "string", "format": "date-time" },
                        "url": { "type": "string", "format": "uri-reference", "description": "The order's confirmation page" }
                    }
                },
                "FieldError": {
                    "type": "object",
                    "required": ["field", "message"],
                    "additionalProperties": false,
                    "properties": {
                        "field": { "type": "string", "description": "Where: `customer.email`, `items[2].quantity`, `items`, `body`" },
                        "message": { "type": "string" }
                    }
                },
                "Shortage": {
                    "type": "object",
                    "required": ["product_id", "name", "requested", "available"],
                    "additionalProperties": false,
                    "properties": {
                        "product_id": { "type": "integer", "minimum": 1 },
                        "name": { "type": "string" },
                        "requested": { "type": "integer", "minimum": 1 },
                        "available": { "type": "integer", "minimum": 0 }
                    }
                },
                "Problem": {
                    "type": "object",
                    "description": "An RFC 9457 problem document",
                    "required": ["type", "title", "status", "detail"],
                    "additionalProperties": false,
                    "properties": {
                        "type": { "type": "string", "format": "uri", "description": "`urn:doorbuster:problem:…` for the shop's own problems, `about:blank` otherwise" },
                        "title": { "type": "string" },
                        "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                        "detail": { "type": "string", "description": "What to fix" },
                        "errors": { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/FieldError" } },
                        "shortages": { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Shortage" } }
                    }
                }
            }
        }
    })
}
