//! Catalog reads: categories, product listings with sorting and paging, single products.
//!
//! The catalog is read-mostly; the only write to `products` is the stock decrement in
//! [`super::orders`], which is why these functions use the reader pool.

use serde::Serialize;
use sqlx::QueryBuilder;

use super::{Db, DbError, with_reader};

/// At or below this many units a product shows "Only N left".
pub const LOW_STOCK_THRESHOLD: i64 = 10;

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Category {
    pub slug: String,
    pub name: String,
    pub tagline: String,
    #[serde(skip)]
    pub position: i32,
    pub product_count: i64,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
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

/// `SELECT <every Product column> FROM products <rest>`, as static text (sqlx only runs static
/// SQL, which keeps injection out by construction).
macro_rules! select_products {
    ($($rest:literal),+) => {
        concat!(
            "SELECT id, slug, category_slug, name, description, price_cents, list_price_cents, ",
            "stock, rating, review_count, doorbuster FROM products ",
            $($rest),+
        )
    };
}

/// The listing query for one sort order. Each order is its own statement; the filter
/// `$1 IS NULL OR …` lets one statement serve "all products" and "one category".
macro_rules! listing_sql {
    ($order:literal) => {
        select_products!(
            "WHERE ($1 IS NULL OR category_slug = $1) ORDER BY ",
            $order,
            ", id LIMIT $2 OFFSET $3"
        )
    };
}

fn listing_sql(sort: Sort) -> &'static str {
    match sort {
        Sort::Featured => listing_sql!("doorbuster DESC, review_count DESC"),
        Sort::PriceAsc => listing_sql!("price_cents ASC"),
        Sort::PriceDesc => listing_sql!("price_cents DESC"),
        Sort::Rating => listing_sql!("rating DESC, review_count DESC"),
        Sort::Discount => listing_sql!(
            "CASE WHEN list_price_cents > 0 THEN (list_price_cents - price_cents) * 1000 / list_price_cents ELSE 0 END DESC"
        ),
    }
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT categories", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "categories"))]
pub async fn categories(db: &Db) -> Result<Vec<Category>, DbError> {
    db.call(async move {
        const SQL: &str = "SELECT c.slug, c.name, c.tagline, c.position, \
             (SELECT COUNT(*) FROM products p WHERE p.category_slug = c.slug) AS product_count \
             FROM categories c ORDER BY c.position, c.slug";
        with_reader!(db, pool => Ok(sqlx::query_as(SQL).fetch_all(pool).await?))
    })
    .await
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT categories", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "categories"))]
pub async fn category(db: &Db, slug: &str) -> Result<Option<Category>, DbError> {
    db.call(async move {
        const SQL: &str = "SELECT c.slug, c.name, c.tagline, c.position, \
             (SELECT COUNT(*) FROM products p WHERE p.category_slug = c.slug) AS product_count \
             FROM categories c WHERE c.slug = $1";
        with_reader!(db, pool => Ok(sqlx::query_as(SQL).bind(slug).fetch_optional(pool).await?))
    })
    .await
}

/// A page of products, optionally within one category.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn products(
    db: &Db,
    category: Option<&str>,
    sort: Sort,
    limit: i64,
    offset: i64,
) -> Result<ProductPage, DbError> {
    db.call(async move {
        const COUNT_SQL: &str =
            "SELECT COUNT(*) FROM products WHERE ($1 IS NULL OR category_slug = $1)";
        with_reader!(db, pool => {
            let items = sqlx::query_as(listing_sql(sort))
                .bind(category)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(COUNT_SQL).bind(category).fetch_one(pool).await?;
            Ok(ProductPage { items, total })
        })
    })
    .await
}

/// The doorbuster deals for the home page hero, in stock first.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn doorbusters(db: &Db) -> Result<Vec<Product>, DbError> {
    db.call(async move {
        const SQL: &str = select_products!(
            "WHERE doorbuster ORDER BY stock = 0, price_cents * 100 / NULLIF(list_price_cents, 0), id"
        );
        with_reader!(db, pool => Ok(sqlx::query_as(SQL).fetch_all(pool).await?))
    })
    .await
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn product_by_slug(db: &Db, slug: &str) -> Result<Option<Product>, DbError> {
    db.call(async move {
        const SQL: &str = select_products!("WHERE slug = $1");
        with_reader!(db, pool => Ok(sqlx::query_as(SQL).bind(slug).fetch_optional(pool).await?))
    })
    .await
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn product_by_id(db: &Db, id: i64) -> Result<Option<Product>, DbError> {
    db.call(async move {
        const SQL: &str = select_products!("WHERE id = $1");
        with_reader!(db, pool => Ok(sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?))
    })
    .await
}

/// Other products of the same category, for "You may also like".
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn related(db: &Db, product: &Product, limit: i64) -> Result<Vec<Product>, DbError> {
    db.call(async move {
        const SQL: &str = select_products!(
            "WHERE category_slug = $1 AND id <> $2 ORDER BY rating DESC, id LIMIT $3"
        );
        with_reader!(db, pool => Ok(sqlx::query_as(SQL)
            .bind(&product.category_slug)
            .bind(product.id)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    })
    .await
}

/// The products with these ids, in no particular order; unknown ids are simply absent.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn products_by_ids(db: &Db, ids: &[i64]) -> Result<Vec<Product>, DbError> {
    db.call(async move {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_reader!(db, pool => {
            let mut query = QueryBuilder::new(select_products!("WHERE id IN ("));
            let mut separated = query.separated(", ");
            for id in ids {
                separated.push_bind(*id);
            }
            query.push(")");
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    })
    .await
}

/// Presentation helpers used by templates and the API.
impl Product {
    pub fn price(&self) -> crate::money::Money {
        crate::money::Money(self.price_cents)
    }

    pub fn list_price(&self) -> crate::money::Money {
        crate::money::Money(self.list_price_cents)
    }

    pub fn saving(&self) -> crate::money::Money {
        crate::money::Money(self.saving_cents())
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
