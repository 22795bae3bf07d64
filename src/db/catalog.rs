//! Catalog reads: every department and product, for the in-memory catalog
//! ([`crate::shop::catalog::Catalog`]), which answers every page and catalog API request.
//!
//! The catalog is read-mostly; the only write to `products` is the stock decrement in
//! [`super::orders`], which is why this reads through the reader pool.

use crate::shop::catalog::{Category, Product};

use super::{Db, DbError, with_reader};

row_struct! {
    /// A `categories` row; becomes a [`Category`] (whose product count the catalog counts).
    struct CategoryRow {
        slug: String,
        name: String,
        tagline: String,
        position: i32,
    }
}

impl From<CategoryRow> for Category {
    fn from(row: CategoryRow) -> Self {
        Category {
            slug: row.slug,
            name: row.name,
            tagline: row.tagline,
            position: row.position,
            product_count: 0,
        }
    }
}

row_struct! {
    /// A `products` row; becomes a [`Product`].
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
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Product {
            id: row.id,
            slug: row.slug.into(),
            category_slug: row.category_slug.into(),
            name: row.name.into(),
            description: row.description.into(),
            price_cents: row.price_cents,
            list_price_cents: row.list_price_cents,
            stock: row.stock,
            rating: row.rating,
            review_count: row.review_count,
            doorbuster: row.doorbuster,
        }
    }
}

/// Every department and every product, stock included, read in one snapshot of the database
/// (one transaction on PostgreSQL, one read transaction on SQLite) so that a department's
/// products and their stock agree.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "SELECT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "SELECT", db.collection.name = "products"))]
pub async fn everything(db: &Db) -> Result<(Vec<Category>, Vec<Product>), DbError> {
    db.call(async move {
        const CATEGORIES: &str = "SELECT slug, name, tagline, position FROM categories";
        const PRODUCTS: &str = "SELECT id, slug, category_slug, name, description, price_cents, \
             list_price_cents, stock, rating, review_count, doorbuster FROM products";
        with_reader!(db, pool => {
            let mut tx = pool.begin().await?;
            let categories: Vec<CategoryRow> = sqlx::query_as(CATEGORIES).fetch_all(&mut *tx).await?;
            let products: Vec<ProductRow> = sqlx::query_as(PRODUCTS).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok((
                categories.into_iter().map(Category::from).collect(),
                products.into_iter().map(Product::from).collect(),
            ))
        })
    })
    .await
}
