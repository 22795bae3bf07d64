//! The catalog: departments ([`Category`]), what they sell ([`Product`]) and the orders a
//! listing can be sorted in ([`Sort`]), with what a shopper is told about each product (price,
//! saving, stock state).

use serde::Serialize;

/// At or below this many units a product shows "Only N left".
pub const LOW_STOCK_THRESHOLD: i64 = 10;

#[derive(Clone, Debug, Serialize)]
pub struct Category {
    pub slug: String,
    pub name: String,
    pub tagline: String,
    #[serde(skip)]
    pub position: i32,
    pub product_count: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Product {
    pub id: i64,
    pub slug: String,
    #[serde(rename = "category")]
    pub category_slug: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub list_price_cents: i64,
    pub stock: i64,
    pub rating: f64,
    pub review_count: i64,
    pub doorbuster: bool,
}

/// What a shopper is told about availability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    InStock,
    Low,
    SoldOut,
}

impl Product {
    pub fn saving_cents(&self) -> i64 {
        (self.list_price_cents - self.price_cents).max(0)
    }

    /// Whole percent off the list price, rounded down (never claims more than the real saving).
    pub fn discount_percent(&self) -> i64 {
        if self.list_price_cents <= 0 {
            return 0;
        }
        self.saving_cents() * 100 / self.list_price_cents
    }

    pub fn stock_state(&self) -> StockState {
        match self.stock {
            s if s <= 0 => StockState::SoldOut,
            s if s <= LOW_STOCK_THRESHOLD => StockState::Low,
            _ => StockState::InStock,
        }
    }

    pub fn image_path(&self) -> String {
        format!("/art/product/{}.svg", self.slug)
    }
}

/// Listing orders a shopper can pick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sort {
    /// Doorbusters first, then the most reviewed.
    #[default]
    Featured,
    PriceAsc,
    PriceDesc,
    Rating,
    Discount,
}

impl Sort {
    pub const ALL: [Sort; 5] = [
        Sort::Featured,
        Sort::PriceAsc,
        Sort::PriceDesc,
        Sort::Rating,
        Sort::Discount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Featured => "featured",
            Sort::PriceAsc => "price-asc",
            Sort::PriceDesc => "price-desc",
            Sort::Rating => "rating",
            Sort::Discount => "discount",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Featured => "Featured",
            Sort::PriceAsc => "Price: low to high",
            Sort::PriceDesc => "Price: high to low",
            Sort::Rating => "Customer rating",
            Sort::Discount => "Biggest discount",
        }
    }
}

/// One page of a listing plus the total, for pagination.
#[derive(Clone, Debug, Serialize)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub total: i64,
}

/// Presentation helpers used by templates and the API.
impl Product {
    pub fn price(&self) -> crate::shop::money::Money {
        crate::shop::money::Money(self.price_cents)
    }

    pub fn list_price(&self) -> crate::shop::money::Money {
        crate::shop::money::Money(self.list_price_cents)
    }

    pub fn saving(&self) -> crate::shop::money::Money {
        crate::shop::money::Money(self.saving_cents())
    }

    pub fn is_discounted(&self) -> bool {
        self.saving_cents() > 0
    }

    pub fn is_sold_out(&self) -> bool {
        self.stock_state() == StockState::SoldOut
    }

    pub fn is_low_stock(&self) -> bool {
        self.stock_state() == StockState::Low
    }

    /// "4.6", for "4.6 out of 5 stars".
    pub fn rating_text(&self) -> String {
        format!("{:.1}", self.rating)
    }

    /// The first paragraph-worth of the description, for cards.
    pub fn blurb(&self) -> &str {
        self.description
            .split_once(". ")
            .map_or(self.description.as_str(), |(first, _)| first)
    }
}
