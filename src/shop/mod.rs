//! The shop's core: what it sells and the rules of selling it, with no HTTP and no SQL in it.
//!
//! - [`catalog`]: departments, products and how listings sort; what a shopper is told about
//!   price and stock.
//! - [`cart`]: the cookie-held cart, validated on every read.
//! - [`order`]: customers, order requests, orders and what can become of a checkout.
//! - [`checkout`]: what a valid order request is, and placing one.
//! - [`money`]: integer cents, formatted for people.
//! - [`schema`]: what the nouns' JSON Schemas (for the API's OpenAPI document) need beyond their
//!   derives: the patterns of customer fields and order numbers.

pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod money;
pub mod order;
pub mod schema;
