//! The Black Friday catalog shipped inside the binary (`seed/catalog.json`) and its loading.
//!
//! Seeding is idempotent: rows are inserted only when their slug is new, so running `migrate` on
//! every pod start never restocks a shared database behind the shoppers' backs. Restocking is an
//! explicit operator action ([`restock`]), handy between two runs of a demo.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Db, DbError, with_writer};

/// The catalog file, embedded at compile time.
const CATALOG_JSON: &str = include_str!("../../seed/catalog.json");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCatalog {
    pub categories: Vec<SeedCategory>,
    pub products: Vec<SeedProduct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCategory {
    pub slug: String,
    pub name: String,
    pub tagline: String,
    pub position: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProduct {
    pub slug: String,
    pub category: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub list_price_cents: i64,
    pub stock: i64,
    pub rating: f64,
    pub review_count: i64,
    pub doorbuster: bool,
}

/// The embedded catalog, parsed. A parse failure is a build defect, caught by the unit test below.
pub fn catalog() -> Result<SeedCatalog, serde_json::Error> {
    serde_json::from_str(CATALOG_JSON)
}

/// What seeding did, for the log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub categories_added: u64,
    pub products_added: u64,
}

/// Inserts the categories and products that are not in the database yet.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "INSERT products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "INSERT", db.collection.name = "products"))]
pub async fn seed(db: &Db) -> Result<SeedReport, DbError> {
    db.call(async move {
        const INSERT_CATEGORY: &str = "INSERT INTO categories (slug, name, tagline, position) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING";
        const INSERT_PRODUCT: &str = "INSERT INTO products (slug, category_slug, name, description, \
             price_cents, list_price_cents, stock, rating, review_count, doorbuster, seed_stock) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $7) ON CONFLICT (slug) DO NOTHING";
        let catalog =
            catalog().map_err(|error| DbError::Other(sqlx::Error::Decode(Box::new(error))))?;
        let mut report = SeedReport::default();
        with_writer!(db, pool => {
            // Nearly every start finds the catalog complete: two reads tell, where inserting
            // every row (each a no-op) would cost a write transaction and a statement per row.
            let categories: HashSet<String> = sqlx::query_scalar("SELECT slug FROM categories")
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect();
            let products: HashSet<String> = sqlx::query_scalar("SELECT slug FROM products")
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect();
            let new_categories: Vec<_> =
                catalog.categories.iter().filter(|c| !categories.contains(&c.slug)).collect();
            let new_products: Vec<_> =
                catalog.products.iter().filter(|p| !products.contains(&p.slug)).collect();
            if new_categories.is_empty() && new_products.is_empty() {
                return Ok(report);
            }
            // Another replica may be seeding at the same moment: the inserts still skip rows
            // that exist by then.
            let mut tx = pool.begin().await?;
            for category in new_categories {
                report.categories_added += sqlx::query(INSERT_CATEGORY)
                    .bind(&category.slug)
                    .bind(&category.name)
                    .bind(&category.tagline)
                    .bind(category.position)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            for product in new_products {
                report.products_added += sqlx::query(INSERT_PRODUCT)
                    .bind(&product.slug)
                    .bind(&product.category)
                    .bind(&product.name)
                    .bind(&product.description)
                    .bind(product.price_cents)
                    .bind(product.list_price_cents)
                    .bind(product.stock)
                    .bind(product.rating)
                    .bind(product.review_count)
                    .bind(product.doorbuster)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(report)
    })
    .await
}

/// Puts every product's stock back to its seeded level. Orders already placed are kept.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "UPDATE products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "UPDATE", db.collection.name = "products"))]
pub async fn restock(db: &Db) -> Result<u64, DbError> {
    db.call(async move {
        with_writer!(db, pool => Ok(sqlx::query("UPDATE products SET stock = seed_stock")
            .execute(pool)
            .await?
            .rows_affected()))
    })
    .await
}

/// Puts every product's stock at `units` (see `doorbuster migrate --restock-to`), so a long load
/// test cannot sell out. Orders already placed are kept, and `--restock` still goes back to the
/// seeded levels; like [`restock`], it invalidates what [`super::orders::audit`] compares.
#[tracing::instrument(level = "info", skip_all, fields(otel.name = "UPDATE products", otel.kind = "client", db.system.name = db.engine().as_str(), db.operation.name = "UPDATE", db.collection.name = "products"))]
pub async fn restock_to(db: &Db, units: i64) -> Result<u64, DbError> {
    db.call(async move {
        with_writer!(db, pool => Ok(sqlx::query("UPDATE products SET stock = $1")
            .bind(units)
            .execute(pool)
            .await?
            .rows_affected()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_a_black_friday_catalog() {
        let catalog = catalog().expect("seed/catalog.json parses");
        assert!(catalog.categories.len() >= 5);
        assert!(catalog.products.len() >= 60);
        let categories: HashSet<_> = catalog.categories.iter().map(|c| c.slug.as_str()).collect();
        let mut slugs = HashSet::new();
        for product in &catalog.products {
            assert!(
                categories.contains(product.category.as_str()),
                "{}",
                product.slug
            );
            assert!(
                slugs.insert(product.slug.as_str()),
                "duplicate slug {}",
                product.slug
            );
            assert!(
                product.price_cents <= product.list_price_cents,
                "{}",
                product.slug
            );
            assert!(product.stock >= 0 && (0.0..=5.0).contains(&product.rating));
        }
        let doorbusters: Vec<_> = catalog.products.iter().filter(|p| p.doorbuster).collect();
        assert!(doorbusters.len() >= 6);
        for deal in doorbusters {
            assert!(deal.stock <= 30, "doorbusters sell out: {}", deal.slug);
            assert!(
                deal.price_cents * 2 <= deal.list_price_cents,
                "deep discount: {}",
                deal.slug
            );
        }
    }
}
