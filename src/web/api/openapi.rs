//! The OpenAPI 3.1 description of `/api`, served at `/api/openapi.json`, derived from the code.
//!
//! The API router ([`super::routes`]) registers every route together with the function here that
//! describes it, so the document lists exactly what the router serves. Bodies and parameters are
//! described by the JSON Schemas of the types the handlers and extractors read and write
//! (`schemars` derives on the shop's nouns and the API's views), limits included: `MAX_LINES`,
//! `MAX_QUANTITY`, the paging bounds, `MAX_IDEMPOTENCY_KEY_LEN` and the order number's alphabet
//! and length are the constants the code checks against, and each customer field's pattern is
//! built from what checkout accepts ([`crate::shop::schema`]). The extractors document their own
//! rejections. What no type says is written here, next to the route: the statuses a handler
//! answers besides its success, the headers it reads or sets by hand (`Idempotency-Key`,
//! `Location`, `Idempotent-Replayed`), the path parameters it reads as plain strings, and the links
//! between operations. Every operation can answer 503 with `Retry-After` (the request timeout and
//! the in-flight bound sit in front of all of them), which [`finish`] adds to each.
//!
//! The document is meant to be exact in both directions: a request it calls valid is accepted
//! unless the data says otherwise (an unknown product, stock), one it calls invalid is refused,
//! and responses carry exactly the documented properties (`additionalProperties: false`). Tests
//! prove the customer fields' patterns and the `Idempotency-Key` schema accept exactly what checkout
//! accepts, and `scripts/schemathesis` sends generated requests (valid and invalid) to the running
//! binary and checks every answer against the document.
//!
//! ## Why aide rather than utoipa
//! A spike derived the same types and two routes with each (utoipa 6.0 with utoipa-axum 0.3;
//! aide 0.15 with schemars 0.9), on what this document needs:
//! - **Limits from the code.** utoipa's `#[schema(maximum = …)]` takes only a literal
//!   (`maximum = MAX_QUANTITY` fails with "no `literal` value found"), so each limit would be
//!   copied or its schema built by hand in a `schema_with` function. schemars takes any
//!   expression: `range(max = MAX_QUANTITY)`, `regex(pattern = text_pattern(100))`.
//! - **Exact responses.** A view extends a noun with `#[serde(flatten)]` (`ProductView` is a
//!   `Product` plus what clients would compute). utoipa makes that an `allOf` and drops
//!   `additionalProperties: false`; schemars merges the fields into one object that keeps it.
//! - Both take the path and method from one registration and keep axum's 405 with `Allow`.
//!   utoipa documents a path parameter from its attribute; aide needs a parameter read as a
//!   plain `String` declared here, and a handler that returns a bare `Response` (checkout) told
//!   its body type.

use std::sync::LazyLock;

use aide::axum::ApiRouter;
use aide::generate::GenContext;
use aide::openapi::{
    MediaType, OpenApi, Operation, Parameter, ParameterSchemaOrContent, ReferenceOr,
    Response as ResponseDoc, SchemaObject, StatusCode as Status,
};
use aide::operation::{OperationInput, OperationOutput};
use aide::transform::{TransformOperation, TransformResponse};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::OrderView;
use crate::error::{ApiError, PROBLEM_CONTENT_TYPE, Problem};
use crate::shop::checkout::MAX_IDEMPOTENCY_KEY_LEN;
use crate::shop::schema::order_id_pattern;
use crate::web::extract::{ApiJson, ApiPath, ApiQuery};

/// The document, serialized once.
struct Document {
    value: Value,
    bytes: Bytes,
}

static DOCUMENT: LazyLock<Document> = LazyLock::new(|| {
    let value =
        serde_json::to_value(super::routes().document).expect("the OpenAPI document serializes");
    let bytes = Bytes::from(value.to_string());
    Document { value, bytes }
});

/// `GET /api/openapi.json`.
pub(super) async fn serve() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.bytes.clone(),
    )
        .into_response()
}

/// The document, for tests and tools.
pub fn spec() -> &'static Value {
    &DOCUMENT.value
}

/// Turns the routes `build` makes into an axum router, adding what they document to `api`.
///
/// aide generates schemas while routes are registered, with a generator it keeps per thread and
/// resets after each `finish_api`; this sets it up first: OpenAPI 3.1's JSON Schema dialect,
/// every named schema under `#/components/schemas/`, and a panic for anything aide cannot
/// document, so that a mistake here fails every test rather than leaving a gap in the document.
pub(super) fn finish<S: Clone + Send + Sync + 'static>(
    api: &mut OpenApi,
    build: impl FnOnce() -> ApiRouter<S>,
) -> Router<S> {
    aide::generate::in_context(|ctx| {
        ctx.schema = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|settings| {
            settings.definitions_path = "#/components/schemas/".into();
            settings.meta_schema = None;
        }));
    });
    aide::generate::on_error(|error| {
        panic!("the OpenAPI document cannot describe a route: {error}")
    });
    build().finish_api_with(api, |mut api| {
        every_operation_can_be_unavailable(api.inner_mut());
        api
    })
}

/// Adds the 503 every operation can answer to each that does not describe its own.
fn every_operation_can_be_unavailable(api: &mut OpenApi) {
    let busy = unavailable(
        "The database is unavailable, the request took too long, or the shop is at capacity; \
         retry after Retry-After seconds",
    );
    for (_, item) in api
        .paths
        .iter_mut()
        .flat_map(|paths| paths.paths.iter_mut())
    {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            let responses = operation.responses.get_or_insert_with(Default::default);
            responses
                .responses
                .entry(Status::Code(503))
                .or_insert_with(|| ReferenceOr::Item(busy.clone()));
        }
    }
}

/// The finished document: `api` with its title and description.
pub(super) fn document(mut api: OpenApi) -> OpenApi {
    api.info.title = "Doorbuster API".to_owned();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.info.description = Some(
        "The Black Friday storefront's JSON API: browse the catalog, check out, read orders. \
         Money is integer US cents. Errors are RFC 9457 problem documents \
         (`application/problem+json`) whose `detail` says what to fix. A method a path does not \
         support is answered 405 with an `Allow` header."
            .to_owned(),
    );
    api
}

/// A problem document (`application/problem+json`), as every API error is answered.
struct ProblemJson;

impl OperationOutput for ProblemJson {
    type Inner = Problem;

    fn operation_response(ctx: &mut GenContext, _: &mut Operation) -> Option<ResponseDoc> {
        let mut response = ResponseDoc::default();
        response.content.insert(
            PROBLEM_CONTENT_TYPE.to_owned(),
            MediaType {
                schema: Some(SchemaObject {
                    json_schema: ctx.schema.subschema_for::<Problem>(),
                    example: None,
                    external_docs: None,
                }),
                ..MediaType::default()
            },
        );
        Some(response)
    }
}

/// A handler's errors: which statuses it answers is said route by route (below), as no type can.
impl OperationOutput for ApiError {
    type Inner = Problem;
}

/// A problem response with this description.
fn problem(description: &str) -> ResponseDoc {
    aide::generate::in_context(|ctx| {
        let mut response = ProblemJson::operation_response(ctx, &mut Operation::default())
            .expect("a problem response");
        response.description = description.to_owned();
        response
    })
}

/// A 503: the database is unreachable, a request took too long, or the shop is at capacity. The
/// shop sends `Retry-After` with every 503.
fn unavailable(description: &str) -> ResponseDoc {
    let mut response = problem(description);
    response.headers.insert(
        "Retry-After".to_owned(),
        from_json(json!({
            "required": true,
            "description": "Seconds to wait before retrying",
            "schema": { "type": "integer", "minimum": 0 }
        })),
    );
    response
}

/// An OpenAPI object of aide's types, written as the JSON it serializes to.
fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid OpenAPI object")
}

/// Adds the problem responses `statuses` (status, description) to an operation.
fn problems<'a>(
    mut op: TransformOperation<'a>,
    statuses: &[(u16, &str)],
) -> TransformOperation<'a> {
    let responses = op
        .inner_mut()
        .responses
        .get_or_insert_with(Default::default);
    for &(status, description) in statuses {
        responses.responses.insert(
            Status::Code(status),
            ReferenceOr::Item(problem(description)),
        );
    }
    op
}

/// Describes the success response the handler's return type documents.
fn success<'a>(
    mut op: TransformOperation<'a>,
    status: u16,
    describe: impl FnOnce(TransformResponse<'_, ()>) -> TransformResponse<'_, ()>,
) -> TransformOperation<'a> {
    let response = op
        .inner_mut()
        .responses
        .as_mut()
        .and_then(|responses| responses.responses.get_mut(&Status::Code(status)))
        .and_then(ReferenceOr::as_item_mut)
        .unwrap_or_else(|| panic!("the handler's return type documents no {status}"));
    let _ = describe(TransformResponse::new(response));
    op
}

/// `links`: OpenAPI links from a response to operations its body supplies parameters for.
fn links<T>(mut response: TransformResponse<'_, T>, links: Value) -> TransformResponse<'_, T> {
    response.inner().links = from_json(links);
    response
}

/// A path parameter the handler reads as a plain string (aide documents only named fields).
fn path_parameter<'a>(
    mut op: TransformOperation<'a>,
    name: &str,
    schema: Value,
    description: &str,
) -> TransformOperation<'a> {
    let parameter: Parameter = from_json(json!({
        "in": "path", "name": name, "required": true, "schema": schema, "description": description
    }));
    op.inner_mut().parameters.push(ReferenceOr::Item(parameter));
    op
}

// The extractors: what they read, and the problems they answer when it will not do.

impl<T: JsonSchema> OperationInput for ApiJson<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        axum::Json::<T>::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, ResponseDoc)> {
        early_problems(
            ctx,
            operation,
            &[
                (400, "Malformed JSON"),
                (413, "Body too large"),
                (415, "Body is not application/json"),
                (422, "The body does not fit the schema"),
            ],
        )
    }
}

impl<T: JsonSchema> OperationInput for ApiQuery<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        axum::extract::Query::<T>::operation_input(ctx, operation);
        // An optional parameter is absent, never `null` (which schemars allows for an `Option`).
        for parameter in &mut operation.parameters {
            if let ReferenceOr::Item(Parameter::Query { parameter_data, .. }) = parameter
                && let ParameterSchemaOrContent::Schema(schema) = &mut parameter_data.format
                && let Some(schema) = schema.json_schema.as_object_mut()
                && let Some(Value::Array(types)) = schema.get_mut("type")
            {
                types.retain(|kind| kind != "null");
                if let [kind] = types.as_slice() {
                    let kind = kind.clone();
                    schema.insert("type".to_owned(), kind);
                }
            }
        }
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, ResponseDoc)> {
        early_problems(
            ctx,
            operation,
            &[(400, "Malformed, repeated or unknown query parameters")],
        )
    }
}

impl<T: JsonSchema> OperationInput for ApiPath<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        axum::extract::Path::<T>::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        ctx: &mut GenContext,
        operation: &mut Operation,
    ) -> Vec<(Option<u16>, ResponseDoc)> {
        early_problems(
            ctx,
            operation,
            &[(400, "The path is not valid UTF-8 once percent-decoded")],
        )
    }
}

fn early_problems(
    ctx: &mut GenContext,
    operation: &mut Operation,
    statuses: &[(u16, &str)],
) -> Vec<(Option<u16>, ResponseDoc)> {
    statuses
        .iter()
        .filter_map(|&(status, description)| {
            let mut response = ProblemJson::operation_response(ctx, operation)?;
            response.description = description.to_owned();
            Some((Some(status), response))
        })
        .collect()
}

// The operations, in the order of the route table.

pub(super) fn list_categories(op: TransformOperation) -> TransformOperation {
    let op = op
        .id("listCategories")
        .summary("All categories, in shop order");
    success(op, 200, |response| {
        links(
            response.description("The categories"),
            json!({
                "listProductsOfCategory": {
                    "operationId": "listProducts",
                    "parameters": { "category": "$response.body#/categories/0/slug" },
                    "description": "The products of the first category"
                }
            }),
        )
    })
}

pub(super) fn list_products(op: TransformOperation) -> TransformOperation {
    let op = op
        .id("listProducts")
        .summary("A page of products, optionally within one category")
        .description("Parameters other than these are refused with 400.");
    let op = success(op, 200, |response| {
        links(
            response.description("One page of products"),
            json!({
                "getFirstProduct": {
                    "operationId": "getProduct",
                    "parameters": { "id_or_slug": "$response.body#/items/0/slug" },
                    "description": "The first product of the page"
                }
            }),
        )
    });
    problems(
        op,
        &[
            (
                400,
                "Malformed, repeated or unknown query parameters, or an unknown sort",
            ),
            (404, "No such category"),
            (422, "page or per_page out of range"),
        ],
    )
}

pub(super) fn get_product(op: TransformOperation) -> TransformOperation {
    let op = op
        .id("getProduct")
        .summary("One product by numeric id or slug");
    let op = path_parameter(
        op,
        "id_or_slug",
        json!({ "type": "string" }),
        "A product's id or its slug",
    );
    let op = success(op, 200, |response| response.description("The product"));
    problems(op, &[(404, "No such product")])
}

pub(super) fn checkout(op: TransformOperation) -> TransformOperation {
    let mut op = op.id("checkout").summary("Place an order").description(
        "Stock is taken and the order written in one transaction. Send an Idempotency-Key to \
             make retries safe: a retry with the same key and body returns the first order. Lines \
             naming the same product are merged; the merged quantity must stay within the \
             per-product limit.",
    );
    op.inner_mut()
        .parameters
        .push(ReferenceOr::Item(from_json(json!({
            "in": "header",
            "name": "Idempotency-Key",
            "required": false,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
                "pattern": "^[!-~]+$"
            },
            "description": "Visible ASCII characters, such as a UUID",
            "example": "5c1f0e4a-9b7d-4e2a-8c3f-1d6b0a9e7f21"
        }))));
    if let Some(ReferenceOr::Item(body)) = &mut op.inner_mut().request_body
        && let Some(json) = body.content.get_mut("application/json")
    {
        json.example = Some(json!({
            "items": [{ "product_id": 1, "quantity": 1 }],
            "customer": {
                "name": "Ada Lovelace", "email": "ada@example.com", "address": "1 Loop Rd",
                "city": "Cambridge", "postal_code": "02139", "country": "US"
            }
        }));
    }
    // The handler builds its response itself, so the body's type is named here.
    let op = op.response_with::<201, axum::Json<OrderView>, _>(|response| {
        let mut response = response
            .description("The order (new, or the first one for a replayed Idempotency-Key)");
        let order = response.inner();
        order.headers = from_json(json!({
            "Location": {
                "required": true,
                "schema": { "type": "string", "format": "uri-reference" },
                "description": "/api/orders/{id}"
            },
            "Idempotent-Replayed": {
                "schema": { "type": "string", "enum": ["true"] },
                "description": "Present when this is a replay"
            }
        }));
        links(
            response,
            json!({
                "getOrder": {
                    "operationId": "getOrder",
                    "parameters": { "id": "$response.body#/id" },
                    "description": "The order just placed"
                }
            }),
        )
    });
    let mut op = problems(
        op,
        &[
            (400, "Malformed JSON or Idempotency-Key"),
            (409, "Not enough stock; `shortages` lists the products"),
            (
                422,
                "Invalid fields (listed in `errors`), unknown products, or an Idempotency-Key \
                 reused with a different body",
            ),
        ],
    );
    op.inner_mut()
        .responses
        .get_or_insert_with(Default::default)
        .responses
        .insert(
            Status::Code(503),
            ReferenceOr::Item(unavailable(
                "The database is unavailable, the request took too long, or the shop is at \
                 capacity; nothing was ordered",
            )),
        );
    op
}

pub(super) fn get_order(op: TransformOperation) -> TransformOperation {
    let op = op.id("getOrder").summary("One order by its number");
    let op = path_parameter(
        op,
        "id",
        json!({ "type": "string", "pattern": order_id_pattern() }),
        "The order number",
    );
    let op = success(op, 200, |response| response.description("The order"));
    problems(op, &[(404, "No such order")])
}

pub(super) fn openapi(op: TransformOperation) -> TransformOperation {
    let mut op = op
        .id("openapi")
        .summary("This document")
        .response_with::<200, axum::Json<Map<String, Value>>, _>(|response| {
            response.description("OpenAPI 3.1 document")
        });
    op.inner_mut()
        .responses
        .get_or_insert_with(Default::default)
        .responses
        .insert(
            Status::Code(503),
            ReferenceOr::Item(unavailable(
                "The request took too long, or the shop is at capacity",
            )),
        );
    op
}
