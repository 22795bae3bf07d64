//! What a virtual user does: discover the catalog once through the API, then walk shopper
//! journeys through the HTML pages (or repeat one request, for benchmarking).
//!
//! A journey is one shopper: an empty cookie jar, the home page, a category, then
//! - **browse**: two product pages of that category;
//! - **cart**: a product page, add to cart, view the cart, leave;
//! - **checkout**: as cart, then place the order with the cart cookie.
//!
//! A 409 (sold out) ends the journey as an expected outcome; any other unexpected answer ends it
//! as failed. Redirects are not followed: the 303 of adding to the cart or of a placed order is
//! that step's success, so every request in the report is one the journey chose to make.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Uri;
use axum::http::header::{HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::args::Scenario;
use super::client::{Call, Client, CookieJar, Failure, Reply};
use super::stats::{Answer, JourneyEnd, Recorder, Step, Verdict};

/// The customer every load-generated order is placed for, as the checkout form posts it.
const CUSTOMER_FORM: &str = "name=Doorbuster+Loadgen&email=loadgen%40example.com\
    &address=1+Queue+Street&city=Springfield&postal_code=12345&country=United+States";
/// The same customer in the API's JSON.
const CUSTOMER_JSON: &str = r#"{"name":"Doorbuster Loadgen","email":"loadgen@example.com","address":"1 Queue Street","city":"Springfield","postal_code":"12345","country":"United States"}"#;
const FORM: &str = "application/x-www-form-urlencoded";
/// The most catalog pages discovery reads (100 products each).
const MAX_DISCOVERY_PAGES: u32 = 100;

/// The three kinds of shopper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JourneyKind {
    Browse,
    Cart,
    Checkout,
}

impl JourneyKind {
    pub const ALL: [JourneyKind; 3] = [
        JourneyKind::Browse,
        JourneyKind::Cart,
        JourneyKind::Checkout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JourneyKind::Browse => "browse",
            JourneyKind::Cart => "cart",
            JourneyKind::Checkout => "checkout",
        }
    }
}

/// How often each kind of journey is chosen, as weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Default for Mix {
    /// Mostly browsing, a few percent checking out: roughly what shops see.
    fn default() -> Self {
        Mix {
            weights: [80, 15, 5],
        }
    }
}

impl Mix {
    /// `browse=80,cart=15,checkout=5`; a kind left out gets weight 0.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 3];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=WEIGHT, e.g. `checkout=5`"))?;
            let kind = JourneyKind::ALL
                .into_iter()
                .find(|k| k.as_str() == name.trim())
                .ok_or_else(|| {
                    format!("unknown journey {name:?}: the journeys are browse, cart and checkout")
                })?;
            weights[kind as usize] = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err("give at least one journey a weight above 0".to_owned());
        }
        Ok(Mix { weights })
    }

    pub fn weight(&self, kind: JourneyKind) -> u32 {
        self.weights[kind as usize]
    }

    /// A journey kind, at random in proportion to the weights.
    pub fn pick(&self, rng: &mut impl Rng) -> JourneyKind {
        let total: u32 = self.weights.iter().sum();
        let mut roll = rng.random_range(0..total);
        for kind in JourneyKind::ALL {
            let weight = self.weight(kind);
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        JourneyKind::Browse
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = JourneyKind::ALL
            .iter()
            .map(|k| format!("{}={}", k.as_str(), self.weight(*k)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug)]
struct CategoryEntry {
    page: Call,
    /// Indexes into [`Catalog::products`].
    products: Vec<usize>,
}

#[derive(Debug)]
struct ProductEntry {
    page: Call,
    api: Call,
    add_to_cart: Call,
    api_checkout: Call,
}

/// The shop's categories and products as requests ready to send (built once, at discovery).
#[derive(Debug)]
pub struct Catalog {
    home: Call,
    cart: Call,
    /// Categories with at least one product.
    categories: Vec<CategoryEntry>,
    products: Vec<ProductEntry>,
}

/// Why the catalog could not be read.
#[derive(Debug)]
pub enum DiscoveryError {
    /// No connection could be made.
    Unreachable,
    /// The target answered, but not like a Doorbuster.
    Unexpected(String),
}

#[derive(Deserialize)]
struct ApiCategories {
    categories: Vec<ApiCategory>,
}

#[derive(Deserialize)]
struct ApiCategory {
    slug: String,
}

#[derive(Deserialize)]
struct ApiProducts {
    items: Vec<ApiProduct>,
    total: usize,
}

#[derive(Deserialize)]
struct ApiProduct {
    id: i64,
    slug: String,
    category: String,
}

fn uri(path: String) -> Result<Uri, DiscoveryError> {
    Uri::try_from(path.as_str()).map_err(|_| {
        DiscoveryError::Unexpected(format!("the catalog names an unusable path {path:?}"))
    })
}

impl Catalog {
    /// A catalog with no products: enough for the `home` scenario.
    pub fn without_products() -> Catalog {
        Catalog {
            home: Call::get(Uri::from_static("/")),
            cart: Call::get(Uri::from_static("/cart")),
            categories: Vec::new(),
            products: Vec::new(),
        }
    }

    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    pub fn category_count(&self) -> usize {
        self.categories.len()
    }

    /// Reads the categories and every product from the JSON API.
    pub async fn discover(client: &mut Client) -> Result<Catalog, DiscoveryError> {
        let categories: ApiCategories = fetch(client, "/api/categories").await?;
        let mut products: Vec<ApiProduct> = Vec::new();
        for page in 1..=MAX_DISCOVERY_PAGES {
            let listing: ApiProducts =
                fetch(client, &format!("/api/products?per_page=100&page={page}")).await?;
            let last = listing.items.is_empty();
            products.extend(listing.items);
            if last || products.len() >= listing.total {
                break;
            }
        }
        let mut catalog = Catalog::without_products();
        for category in categories.categories {
            let products = products
                .iter()
                .enumerate()
                .filter(|(_, p)| p.category == category.slug)
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            if !products.is_empty() {
                catalog.categories.push(CategoryEntry {
                    page: Call::get(uri(format!("/c/{}", category.slug))?),
                    products,
                });
            }
        }
        for product in &products {
            catalog.products.push(ProductEntry {
                page: Call::get(uri(format!("/p/{}", product.slug))?),
                api: Call::get(uri(format!("/api/products/{}", product.id))?),
                add_to_cart: Call::post(
                    Uri::from_static("/cart/add"),
                    FORM,
                    format!("product_id={}&quantity=1", product.id),
                ),
                api_checkout: Call::post(
                    Uri::from_static("/api/checkout"),
                    "application/json",
                    format!(
                        r#"{{"items":[{{"product_id":{}, "quantity":1}}],"customer":{CUSTOMER_JSON}}}"#,
                        product.id
                    ),
                ),
            });
        }
        if catalog.categories.is_empty() {
            return Err(DiscoveryError::Unexpected(
                "the shop lists no products in any category (run `doorbuster migrate` to seed it)"
                    .to_owned(),
            ));
        }
        Ok(catalog)
    }
}

async fn fetch<T: for<'de> Deserialize<'de>>(
    client: &mut Client,
    path: &str,
) -> Result<T, DiscoveryError> {
    let call = Call::get(uri(path.to_owned())?);
    let reply = client
        .send(&call, None, true)
        .await
        .map_err(|failure| match failure {
            Failure::ConnectFailed => DiscoveryError::Unreachable,
            Failure::TimedOut => DiscoveryError::Unexpected(format!("GET {path} timed out")),
            Failure::Broken => DiscoveryError::Unexpected(format!(
                "GET {path} got no HTTP answer (the connection broke)"
            )),
        })?;
    if reply.status != 200 {
        return Err(DiscoveryError::Unexpected(format!(
            "GET {path} answered {}, not 200",
            reply.status
        )));
    }
    serde_json::from_slice(&reply.body.unwrap_or_default()).map_err(|e| {
        DiscoveryError::Unexpected(format!("GET {path} did not answer the catalog's JSON: {e}"))
    })
}

/// What became of one request.
enum Sent {
    /// Stopping: the request was not sent.
    Not,
    Answered(Verdict),
}

/// How a step answer counts.
fn verdict(step: Step, reply: &Reply) -> Verdict {
    let status = reply.status.as_u16();
    match (step, status) {
        (Step::AddToCart, 303) => Verdict::Ok,
        (Step::Checkout, 303) => {
            // Success goes to the confirmation; anything else (back to the cart) placed nothing.
            let confirmed = reply
                .location
                .as_ref()
                .is_some_and(|l| l.as_bytes().starts_with(b"/orders/"));
            if confirmed {
                Verdict::Order
            } else {
                Verdict::Error
            }
        }
        (Step::ApiCheckout, 201) => Verdict::Order,
        (Step::AddToCart | Step::Checkout | Step::ApiCheckout, 409) => Verdict::SoldOut,
        (Step::Home | Step::Category | Step::Product | Step::Cart | Step::Api, 200) => Verdict::Ok,
        _ => Verdict::Error,
    }
}

/// One virtual user: runs journeys (or single requests) until the run closes or it is asked to
/// leave. With `permits`, each request first waits for one (the open model).
pub async fn user(ctx: Arc<Context>, leave: CancellationToken, permits: Option<Arc<Semaphore>>) {
    ctx.user_joined();
    let mut shopper = Shopper {
        client: Client::new(ctx.endpoint.clone()),
        jar: CookieJar::default(),
        rng: SmallRng::from_rng(&mut rand::rng()),
        recorder: Recorder::new(ctx.stats.clone()),
        permits,
        ctx: ctx.clone(),
    };
    while !(ctx.closing.is_cancelled() || leave.is_cancelled()) {
        match ctx.scenario {
            Scenario::Journey => shopper.journey().await,
            single => {
                if !shopper.single(single).await {
                    break;
                }
            }
        }
    }
    drop(shopper);
    ctx.user_left();
}

struct Shopper {
    ctx: Arc<Context>,
    client: Client,
    jar: CookieJar,
    rng: SmallRng,
    recorder: Recorder,
    permits: Option<Arc<Semaphore>>,
}

impl Shopper {
    /// Sends one request of `step` (unless the run is stopping) and records the answer.
    /// `first` marks a journey's first request, which is not started once the shop closes.
    async fn request(&mut self, step: Step, call: &Call, first: bool, cookies: bool) -> Sent {
        if let Some(permits) = &self.permits {
            tokio::select! {
                // A closed semaphore means the run is closing: finish without pacing.
                permit = permits.acquire() => if let Ok(permit) = permit { permit.forget() },
                () = self.ctx.halt.cancelled() => return Sent::Not,
            }
        }
        if self.ctx.halt.is_cancelled()
            || (first && self.ctx.closing.is_cancelled())
            || !self.ctx.take_request()
        {
            return Sent::Not;
        }
        let jar = if cookies { Some(&mut self.jar) } else { None };
        let started = Instant::now();
        let result = self.client.send(call, jar, false).await;
        let now = Instant::now();
        let (answer, verdict) = match result {
            Ok(reply) => (Answer::Status(reply.status.as_u16()), verdict(step, &reply)),
            Err(failure) => (Answer::Failed(failure), Verdict::Error),
        };
        self.recorder
            .request(step, answer, verdict, now - started, now);
        Sent::Answered(verdict)
    }

    /// A step of a journey: its reply if it went as expected, otherwise how the journey ends.
    async fn step(&mut self, step: Step, call: &Call) -> Result<(), JourneyEnd> {
        if !self.think().await {
            return Err(JourneyEnd::Interrupted);
        }
        match self.request(step, call, false, true).await {
            Sent::Not => Err(JourneyEnd::Interrupted),
            Sent::Answered(Verdict::Ok | Verdict::Order) => Ok(()),
            Sent::Answered(Verdict::SoldOut) => Err(JourneyEnd::SoldOut),
            Sent::Answered(Verdict::Error) => Err(JourneyEnd::Failed),
        }
    }

    /// A shopper's pause before the next step; false when the run halts meanwhile.
    async fn think(&mut self) -> bool {
        if self.ctx.think_time.is_zero() {
            return true;
        }
        let pause = self.ctx.think_time.mul_f64(self.rng.random_range(0.5..1.5));
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = self.ctx.halt.cancelled() => false,
        }
    }

    async fn journey(&mut self) {
        let ctx = self.ctx.clone();
        let catalog = &ctx.catalog;
        let kind = ctx.mix.pick(&mut self.rng);
        let category = &catalog.categories[self.rng.random_range(0..catalog.categories.len())];
        let pick = |rng: &mut SmallRng| {
            &catalog.products[category.products[rng.random_range(0..category.products.len())]]
        };
        let product = pick(&mut self.rng);
        let other = pick(&mut self.rng);
        // A new shopper arrives with no cookies.
        self.jar.clear();
        match self.request(Step::Home, &catalog.home, true, true).await {
            Sent::Not => return,
            Sent::Answered(verdict) => {
                self.recorder.journey_started(kind);
                let end = match verdict {
                    Verdict::Ok | Verdict::Order => None,
                    Verdict::SoldOut => Some(JourneyEnd::SoldOut),
                    Verdict::Error => Some(JourneyEnd::Failed),
                };
                if let Some(end) = end {
                    self.recorder.journey_ended(kind, end);
                    return;
                }
            }
        }
        let walked = async {
            self.step(Step::Category, &category.page).await?;
            self.step(Step::Product, &product.page).await?;
            if kind == JourneyKind::Browse {
                return self.step(Step::Product, &other.page).await;
            }
            self.step(Step::AddToCart, &product.add_to_cart).await?;
            self.step(Step::Cart, &catalog.cart).await?;
            if kind == JourneyKind::Cart {
                return Ok(());
            }
            let body = format!(
                "{CUSTOMER_FORM}&idempotency_key=loadgen-{:016x}{:016x}",
                self.rng.random::<u64>(),
                self.rng.random::<u64>()
            );
            let checkout = Call::post(Uri::from_static("/checkout"), FORM, body);
            self.step(Step::Checkout, &checkout).await
        }
        .await;
        self.recorder
            .journey_ended(kind, walked.err().unwrap_or(JourneyEnd::Completed));
    }

    /// One request of a single-step scenario; false when the run is stopping.
    async fn single(&mut self, scenario: Scenario) -> bool {
        let ctx = self.ctx.clone();
        let catalog = &ctx.catalog;
        let sent = match scenario {
            Scenario::Journey | Scenario::Home => {
                self.request(Step::Home, &catalog.home, true, false).await
            }
            Scenario::Category => {
                let category =
                    &catalog.categories[self.rng.random_range(0..catalog.categories.len())];
                self.request(Step::Category, &category.page, true, false)
                    .await
            }
            Scenario::Product | Scenario::Api | Scenario::Checkout => {
                let product = &catalog.products[self.rng.random_range(0..catalog.products.len())];
                match scenario {
                    Scenario::Product => {
                        self.request(Step::Product, &product.page, true, false)
                            .await
                    }
                    Scenario::Api => self.request(Step::Api, &product.api, true, false).await,
                    _ => {
                        // A unique key per order, as a careful API client sends for safe retries.
                        let key = format!("loadgen-{:016x}", self.rng.random::<u64>());
                        let call = product.api_checkout.clone().with_header(
                            HeaderName::from_static("idempotency-key"),
                            HeaderValue::from_str(&key)
                                .unwrap_or(HeaderValue::from_static("loadgen")),
                        );
                        self.request(Step::ApiCheckout, &call, true, false).await
                    }
                }
            }
        };
        !matches!(sent, Sent::Not)
    }
}

/// How long a journey's pauses add up to at most (for the grace period at the end of a run).
pub fn longest_journey_pauses(think_time: Duration) -> Duration {
    think_time.mul_f64(1.5 * (Step::JOURNEY.len() - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_in_proportion() {
        let mix = Mix::parse("browse=2, checkout=1").unwrap();
        assert_eq!(mix.to_string(), "browse=2,cart=0,checkout=1");
        assert_eq!(Mix::default().to_string(), "browse=80,cart=15,checkout=5");
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[mix.pick(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[JourneyKind::Cart as usize], 0);
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
        for bad in ["", "browse", "browse=x", "window=1", "browse=0,cart=0"] {
            assert!(Mix::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn answers_count_by_step() {
        let reply = |status: u16, location: Option<&'static str>| Reply {
            status: axum::http::StatusCode::from_u16(status).unwrap(),
            location: location.map(HeaderValue::from_static),
            body: None,
        };
        assert_eq!(verdict(Step::Home, &reply(200, None)), Verdict::Ok);
        assert_eq!(verdict(Step::Home, &reply(503, None)), Verdict::Error);
        assert_eq!(
            verdict(Step::AddToCart, &reply(303, Some("/cart?added=x"))),
            Verdict::Ok
        );
        assert_eq!(
            verdict(Step::AddToCart, &reply(409, None)),
            Verdict::SoldOut
        );
        assert_eq!(
            verdict(Step::Checkout, &reply(303, Some("/orders/AB12?placed=1"))),
            Verdict::Order
        );
        assert_eq!(
            verdict(Step::Checkout, &reply(303, Some("/cart"))),
            Verdict::Error
        );
        assert_eq!(verdict(Step::Checkout, &reply(409, None)), Verdict::SoldOut);
        assert_eq!(verdict(Step::Checkout, &reply(422, None)), Verdict::Error);
        assert_eq!(
            verdict(Step::ApiCheckout, &reply(201, None)),
            Verdict::Order
        );
        assert_eq!(verdict(Step::Cart, &reply(404, None)), Verdict::Error);
    }

    #[test]
    fn the_load_customer_passes_checkout_validation() {
        let json: serde_json::Value = serde_json::from_str(CUSTOMER_JSON).unwrap();
        let customer: crate::shop::order::Customer = serde_json::from_value(json).unwrap();
        let form: Vec<(String, String)> = form_pairs(CUSTOMER_FORM);
        assert_eq!(form[1], ("email".to_owned(), customer.email.clone()));
        assert_eq!(form[5], ("country".to_owned(), customer.country.clone()));
        let request = crate::shop::checkout::CheckoutRequest {
            items: vec![crate::shop::checkout::ItemRequest {
                product_id: 1,
                quantity: 1,
            }],
            customer,
        };
        assert!(crate::shop::checkout::validate(&request).is_ok());
    }

    /// A minimal decoder for the constant above (only `+` and `%40` occur in it).
    fn form_pairs(body: &str) -> Vec<(String, String)> {
        body.split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.replace('+', " ").replace("%40", "@")))
            .collect()
    }
}
