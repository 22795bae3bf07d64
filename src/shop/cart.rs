//! The shopping cart, held by the client in a cookie so that any replica can serve any request
//! without session affinity or a session store.
//!
//! The cookie carries only product ids and quantities (`12x1-7x3`: characters that need no
//! percent-encoding); names and prices are always
//! read from the database. Every read re-validates it: malformed entries are dropped, quantities
//! are clamped, the number of lines and the cookie's length are bounded. A tampered cookie therefore
//! yields a smaller cart, never an error page.

/// Name of the cart cookie.
pub const COOKIE_NAME: &str = "cart";
/// Most distinct products in one cart (and in one API checkout).
pub const MAX_LINES: usize = 20;
/// Most units of one product per order: doorbusters are limited, and so is everything else.
pub const MAX_QUANTITY: i64 = 10;
/// A cookie longer than this is ignored outright rather than parsed. 20 lines of
/// `idxqty-` fit in well under this.
pub const MAX_COOKIE_LEN: usize = 512;

/// Product ids and quantities, in the order they were first added. Ids are unique and
/// quantities are in `1..=MAX_QUANTITY`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cart {
    lines: Vec<CartLine>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CartLine {
    pub product_id: i64,
    pub quantity: i64,
}

/// Why an item could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error(
        "your cart already holds {MAX_LINES} different products; check out or remove one first"
    )]
    Full,
}

impl Cart {
    /// Reads a cookie value leniently (see the module documentation).
    pub fn from_cookie(value: &str) -> Cart {
        let mut cart = Cart::default();
        if value.len() > MAX_COOKIE_LEN {
            return cart;
        }
        for entry in value.split('-') {
            let Some((id, quantity)) = entry.split_once('x') else {
                continue;
            };
            let (Ok(product_id), Ok(quantity)) = (id.parse::<i64>(), quantity.parse::<i64>())
            else {
                continue;
            };
            if product_id <= 0 || quantity <= 0 || cart.contains(product_id) {
                continue;
            }
            if cart.lines.len() == MAX_LINES {
                break;
            }
            cart.lines.push(CartLine {
                product_id,
                quantity: quantity.min(MAX_QUANTITY),
            });
        }
        cart
    }

    /// The cookie value; empty for an empty cart.
    pub fn to_cookie(&self) -> String {
        let mut out = String::with_capacity(self.lines.len() * 8);
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            out.push_str(&format!("{}x{}", line.product_id, line.quantity));
        }
        out
    }

    pub fn lines(&self) -> &[CartLine] {
        &self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Total units, for the cart counter in the header.
    pub fn item_count(&self) -> i64 {
        self.lines.iter().map(|line| line.quantity).sum()
    }

    pub fn contains(&self, product_id: i64) -> bool {
        self.lines.iter().any(|line| line.product_id == product_id)
    }

    pub fn quantity_of(&self, product_id: i64) -> i64 {
        self.lines
            .iter()
            .find(|line| line.product_id == product_id)
            .map_or(0, |line| line.quantity)
    }

    /// Adds units (clamped to [`MAX_QUANTITY`] in total); returns the product's new quantity.
    pub fn add(&mut self, product_id: i64, quantity: i64) -> Result<i64, CartError> {
        let quantity = quantity.clamp(1, MAX_QUANTITY);
        if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
            line.quantity = (line.quantity + quantity).min(MAX_QUANTITY);
            return Ok(line.quantity);
        }
        if self.lines.len() >= MAX_LINES {
            return Err(CartError::Full);
        }
        self.lines.push(CartLine {
            product_id,
            quantity,
        });
        Ok(quantity)
    }

    /// Sets a product's quantity (clamped); zero or less removes it.
    pub fn set(&mut self, product_id: i64, quantity: i64) -> Result<(), CartError> {
        if quantity <= 0 {
            self.remove(product_id);
            return Ok(());
        }
        let quantity = quantity.min(MAX_QUANTITY);
        if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
            line.quantity = quantity;
            return Ok(());
        }
        if self.lines.len() >= MAX_LINES {
            return Err(CartError::Full);
        }
        self.lines.push(CartLine {
            product_id,
            quantity,
        });
        Ok(())
    }

    pub fn remove(&mut self, product_id: i64) {
        self.lines.retain(|line| line.product_id != product_id);
    }

    /// Keeps only the lines `keep` accepts (used to drop products that no longer exist).
    pub fn retain(&mut self, mut keep: impl FnMut(&CartLine) -> bool) {
        self.lines.retain(|line| keep(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_cookie() {
        let mut cart = Cart::default();
        cart.add(12, 1).unwrap();
        cart.add(7, 3).unwrap();
        assert_eq!(cart.to_cookie(), "12x1-7x3");
        assert_eq!(Cart::from_cookie("12x1-7x3"), cart);
        assert_eq!(cart.item_count(), 4);
    }

    #[test]
    fn drops_malformed_entries_and_clamps_quantities() {
        let cart =
            Cart::from_cookie("x-1x2-abcx1-2x-3x0-1x5-4x99999999999999999999-5x400-x-0x1-6x2x3");
        assert_eq!(cart.to_cookie(), "1x2-5x10");
    }

    #[test]
    fn bounds_lines_and_length() {
        let many: Vec<String> = (1..=50).map(|id| format!("{id}x1")).collect();
        let cart = Cart::from_cookie(&many.join("-"));
        assert_eq!(cart.lines().len(), MAX_LINES);
        assert!(Cart::from_cookie(&"1x1-".repeat(200)).is_empty());
        let mut full = cart.clone();
        assert_eq!(full.add(999, 1), Err(CartError::Full));
        assert_eq!(full.add(1, 100), Ok(MAX_QUANTITY));
    }

    #[test]
    fn set_and_remove() {
        let mut cart = Cart::from_cookie("1x2-2x3");
        cart.set(1, 0).unwrap();
        cart.set(2, 50).unwrap();
        cart.set(3, 1).unwrap();
        assert_eq!(cart.to_cookie(), "2x10-3x1");
        cart.remove(2);
        assert_eq!(cart.quantity_of(3), 1);
        assert!(!cart.contains(2));
    }
}
