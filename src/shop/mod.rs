//! The shop's core: what it sells and the rules of selling it, with no HTTP and no SQL in it.
//!
//! - [`catalog`]: departments, products and how listings sort; what a shopper is told about
//!   price and stock.
//! - [`cart`]: the cookie-held cart, validated on every read.
//! - [`order`]: customers, order requests, orders and what can become of a checkout.
//! - [`checkout`]: what a valid order request is, and placing one.
//! - [`money`]: integer cents, formatted for people.

pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod money;
pub mod order;
