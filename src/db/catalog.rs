//! Catalog reads: categories, product listings with sorting and paging, single products.
//!
//! The catalog is read-mostly; the only write to `products` is the stock decrement in
//! [`super::orders`], which is why these functions use the reader pool.

use sqlx::QueryBuilder;

use crate::shop::catalog::{Category, Product, ProductPage, Sort};

use super::{Db, DbError, with_reader};

/// A `categories` row with its product count; becomes a [`Category`].
#[derive(sqlx::FromRow)]
struct CategoryRow {
    slug: String,
    name: String,
    tagline: String,
    position: i32,
    product_count: i64,
}

impl From<CategoryRow> for Category {
    fn from(row: CategoryRow) -> Self {
        Category {
            slug: row.slug,
            name: row.name,
            tagline: row.tagline,
            position: row.position,
            product_count: row.product_count,
        }
    }
}

/// A `products` row; becomes a [`Product`].
#[derive(sqlx::FromRow)]
struct ProductRow {
    id: i64,
    slug: String,
    category_slug: String,
    name: String,
    description: String,
    price_cents: i64,
    list_price_cents: i64,
    stock: i64,
    rating: f64,
    review_count: i64,
    doorbuster: bool,
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Product {
            id: row.id,
            slug: row.slug,
            category_slug: row.category_slug,
            name: row.name,
            description: row.description,
            price_cents: row.price_cents,
            list_price_cents: row.list_price_cents,
            stock: row.stock,
            rating: row.rating,
            review_count: row.review_count,
            doorbuster: row.doorbuster,
        }
    }
}

fn products_from(rows: Vec<ProductRow>) -> Vec<Product> {
    rows.into_iter().map(Product::from).collect()
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
        with_reader!(db, pool => {
            let rows: Vec<CategoryRow> = sqlx::query_as(SQL).fetch_all(pool).await?;
            Ok(rows.into_iter().map(Category::from).collect())
        })
    })
    .await
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT categories", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "categories"))]
pub async fn category(db: &Db, slug: &str) -> Result<Option<Category>, DbError> {
    db.call(async move {
        const SQL: &str = "SELECT c.slug, c.name, c.tagline, c.position, \
             (SELECT COUNT(*) FROM products p WHERE p.category_slug = c.slug) AS product_count \
             FROM categories c WHERE c.slug = $1";
        with_reader!(db, pool => {
            let row: Option<CategoryRow> = sqlx::query_as(SQL).bind(slug).fetch_optional(pool).await?;
            Ok(row.map(Category::from))
        })
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
            let items: Vec<ProductRow> = sqlx::query_as(listing_sql(sort))
                .bind(category)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(COUNT_SQL).bind(category).fetch_one(pool).await?;
            Ok(ProductPage { items: products_from(items), total })
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
        with_reader!(db, pool => Ok(products_from(sqlx::query_as(SQL).fetch_all(pool).await?)))
    })
    .await
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn product_by_slug(db: &Db, slug: &str) -> Result<Option<Product>, DbError> {
    db.call(async move {
        const SQL: &str = select_products!("WHERE slug = $1");
        with_reader!(db, pool => {
            let row: Option<ProductRow> = sqlx::query_as(SQL).bind(slug).fetch_optional(pool).await?;
            Ok(row.map(Product::from))
        })
    })
    .await
}

#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn product_by_id(db: &Db, id: i64) -> Result<Option<Product>, DbError> {
    db.call(async move {
        const SQL: &str = select_products!("WHERE id = $1");
        with_reader!(db, pool => {
            let row: Option<ProductRow> = sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?;
            Ok(row.map(Product::from))
        })
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
        with_reader!(db, pool => Ok(products_from(sqlx::query_as(SQL)
            .bind(&product.category_slug)
            .bind(product.id)
            .bind(limit)
            .fetch_all(pool)
            .await?)))
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
            Ok(products_from(query.build_query_as().fetch_all(pool).await?))
        })
    })
    .await
}
