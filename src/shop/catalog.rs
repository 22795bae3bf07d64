//! The catalog: departments ([`Category`]), what they sell ([`Product`]) and the orders a
//! listing can be sorted in ([`Sort`]), with what a shopper is told about each product (price,
//! saving, stock state); and the catalog this replica serves from memory ([`Catalog`]).
//!
//! The catalog is 73 products that change only when stock moves, so every page and catalog API
//! answer is built from one immutable [`Snapshot`] held in memory, not from queries (a product
//! page made four). Stock lives alongside the snapshot in atomics, so a sale here moves it at once
//! ([`Catalog::sold`], to the figure its transaction left, never by subtracting: a refresh may
//! have read the sale already) without building a new snapshot. Other replicas' sales and an operator's
//! restock reach it by a refresh from the database every refresh interval
//! (`DOORBUSTER_CATALOG_REFRESH`), in the background: no shopper waits for it. A refresh that
//! fails keeps the copy (stock shown may then lag; the checkout transaction is what guarantees
//! stock) and is tried again at the next interval. Each change bumps [`Catalog::version`], which
//! the page cache checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use schemars::JsonSchema;
use serde::Serialize;

use super::order::StockLeft;
use crate::db::{self, Db, DbError};

/// At or below this many units a product shows "Only N left".
pub const LOW_STOCK_THRESHOLD: i64 = 10;

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Category {
    pub slug: String,
    pub name: String,
    pub tagline: String,
    #[serde(skip)]
    pub position: i32,
    #[schemars(range(min = 0))]
    pub product_count: i64,
}

/// A product. Its text is shared (`Arc<str>`) with the catalog's snapshot: every page and API
/// answer hands out dozens of products, and a copy is then a few reference counts, not strings.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Product {
    #[schemars(range(min = 1))]
    pub id: i64,
    pub slug: Arc<str>,
    /// The category's slug.
    #[serde(rename = "category")]
    pub category_slug: Arc<str>,
    pub name: Arc<str>,
    pub description: Arc<str>,
    #[schemars(range(min = 0))]
    pub price_cents: i64,
    #[schemars(range(min = 0))]
    pub list_price_cents: i64,
    #[schemars(range(min = 0))]
    pub stock: i64,
    #[schemars(range(min = 0, max = 5))]
    pub rating: f64,
    #[schemars(range(min = 0))]
    pub review_count: i64,
    pub doorbuster: bool,
}

/// What a shopper is told about availability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
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

    /// `/art/product/{slug}.svg`, the product's illustration (served by `web::art`; the page
    /// templates write the same path around the escaped slug).
    pub fn image_path(&self) -> impl std::fmt::Display + '_ {
        std::fmt::from_fn(|f| write!(f, "/art/product/{}.svg", self.slug))
    }
}

/// Listing orders a shopper can pick; `featured` puts doorbusters first, then the most reviewed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Sort {
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

    /// "4.6", for "4.6 out of 5 stars": to the nearest tenth, written as two integers (the
    /// float formatter's exact mode costs more than the rest of a product card).
    pub fn rating_text(&self) -> crate::shop::money::Tenths {
        // Ratings are 0 to 5 (a negative one would read as 0.0).
        crate::shop::money::Tenths((self.rating * 10.0).round() as u64)
    }

    /// The first paragraph-worth of the description, for cards.
    pub fn blurb(&self) -> &str {
        self.description
            .split_once(". ")
            .map_or(&*self.description, |(first, _)| first)
    }
}

/// One page of a listing plus the total, for pagination.
#[derive(Clone, Debug, Serialize)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub total: i64,
}

/// One immutable copy of the catalog: departments in menu order, products, and for each listing
/// order the products already sorted. Stock is read live from the atomics alongside; every
/// [`Product`] handed out carries the stock of the moment it was handed out.
#[derive(Debug)]
pub struct Snapshot {
    categories: Vec<Category>,
    /// In id order.
    products: Vec<Product>,
    /// Live stock, index for index with `products`.
    stock: Box<[AtomicI64]>,
    by_id: HashMap<i64, usize, foldhash::fast::RandomState>,
    by_slug: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// For each of [`Sort::ALL`], the product indices in that order.
    sorted: [Vec<usize>; Sort::ALL.len()],
    /// The doorbuster deals' indices, deepest discount first (stock aside).
    deals: Vec<usize>,
}

impl Snapshot {
    /// A snapshot of these rows. Department product counts are counted here; departments come in
    /// menu order (position, then slug) whatever order they are given in.
    pub fn new(mut categories: Vec<Category>, mut products: Vec<Product>) -> Snapshot {
        products.sort_by_key(|p| p.id);
        categories.sort_by(|a, b| (a.position, &a.slug).cmp(&(b.position, &b.slug)));
        for category in &mut categories {
            category.product_count = products
                .iter()
                .filter(|p| *p.category_slug == *category.slug)
                .count() as i64;
        }
        let stock = products.iter().map(|p| AtomicI64::new(p.stock)).collect();
        let by_id = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        let by_slug = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.slug.clone(), i))
            .collect();
        let sorted = Sort::ALL.map(|sort| {
            let mut order: Vec<usize> = (0..products.len()).collect();
            // Every order ends on the id, so listings are stable page to page (as the SQL was).
            order.sort_by(|&a, &b| sort.compare(&products[a], &products[b]));
            order
        });
        let mut deals: Vec<usize> = (0..products.len())
            .filter(|&i| products[i].doorbuster)
            .collect();
        deals.sort_by_key(|&i| {
            let p = &products[i];
            let share_paid = p
                .price_cents
                .saturating_mul(100)
                .checked_div(p.list_price_cents)
                .unwrap_or(0);
            (share_paid, p.id)
        });
        Snapshot {
            categories,
            products,
            stock,
            by_id,
            by_slug,
            sorted,
            deals,
        }
    }

    /// The product at `index` with its stock as of now.
    fn product_at(&self, index: usize) -> Product {
        let mut product = self.products[index].clone();
        product.stock = self.stock[index].load(Ordering::Relaxed);
        product
    }

    /// Every product in id order, with the stock it was read with (the live stock is what
    /// [`Snapshot::product_by_id`] and the listings hand out).
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// Departments in menu order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn category(&self, slug: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.slug == slug)
    }

    pub fn product_by_id(&self, id: i64) -> Option<Product> {
        self.by_id.get(&id).map(|&i| self.product_at(i))
    }

    pub fn product_by_slug(&self, slug: &str) -> Option<Product> {
        self.by_slug.get(slug).map(|&i| self.product_at(i))
    }

    /// The products with these ids, in the order asked; unknown ids are left out.
    pub fn products_by_ids(&self, ids: &[i64]) -> Vec<Product> {
        ids.iter()
            .filter_map(|&id| self.product_by_id(id))
            .collect()
    }

    /// A page of products in `sort` order, optionally within one department.
    pub fn listing(
        &self,
        category: Option<&str>,
        sort: Sort,
        limit: usize,
        offset: usize,
    ) -> ProductPage {
        let in_listing =
            |&&i: &&usize| category.is_none_or(|c| &*self.products[i].category_slug == c);
        let order = &self.sorted[sort.index()];
        ProductPage {
            items: order
                .iter()
                .filter(in_listing)
                .skip(offset)
                .take(limit)
                .map(|&i| self.product_at(i))
                .collect(),
            total: order.iter().filter(in_listing).count() as i64,
        }
    }

    /// The doorbuster deals for the home page: in stock first, then the deepest discount.
    pub fn doorbusters(&self) -> Vec<Product> {
        let mut deals: Vec<Product> = self.deals.iter().map(|&i| self.product_at(i)).collect();
        // Already by discount; a stable sort on stock alone keeps that order within each part.
        deals.sort_by_key(|p| p.stock <= 0);
        deals
    }

    /// Up to `limit` other products of the same department, best rated first.
    pub fn related(&self, product: &Product, limit: usize) -> Vec<Product> {
        self.sorted[Sort::Rating.index()]
            .iter()
            .filter(|&&i| {
                let other = &self.products[i];
                other.category_slug == product.category_slug && other.id != product.id
            })
            .take(limit)
            .map(|&i| self.product_at(i))
            .collect()
    }

    /// Whether `rows` (from the database) hold the same products with the same details as
    /// this snapshot, stock aside.
    fn same_catalog(&self, categories: &[Category], products: &[Product]) -> bool {
        let mut categories = categories.to_vec();
        categories.sort_by(|a, b| (a.position, &a.slug).cmp(&(b.position, &b.slug)));
        self.products.len() == products.len()
            && products.iter().all(|p| {
                self.by_id
                    .get(&p.id)
                    .is_some_and(|&i| self.products[i].same_but_stock(p))
            })
            && self.categories.len() == categories.len()
            && self.categories.iter().zip(&categories).all(|(a, b)| {
                (&a.slug, &a.name, &a.tagline, a.position)
                    == (&b.slug, &b.name, &b.tagline, b.position)
            })
    }

    /// Sets stock from the database's figures; whether any moved.
    fn set_stock(&self, products: &[Product]) -> bool {
        let mut moved = false;
        for product in products {
            if let Some(&i) = self.by_id.get(&product.id) {
                moved |= self.stock[i].swap(product.stock, Ordering::Relaxed) != product.stock;
            }
        }
        moved
    }
}

impl Product {
    fn same_but_stock(&self, other: &Product) -> bool {
        fn key(p: &Product) -> impl Eq + '_ {
            (
                p.id,
                &*p.slug,
                &*p.category_slug,
                &*p.name,
                &*p.description,
                p.price_cents,
                p.list_price_cents,
                p.rating.to_bits(),
                p.review_count,
                p.doorbuster,
            )
        }
        key(self) == key(other)
    }
}

impl Sort {
    fn index(self) -> usize {
        Sort::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The listing order: as the storefront has always sorted, ties broken by id.
    fn compare(self, a: &Product, b: &Product) -> std::cmp::Ordering {
        let discount = |p: &Product| {
            if p.list_price_cents > 0 {
                (p.list_price_cents - p.price_cents) * 1000 / p.list_price_cents
            } else {
                0
            }
        };
        let by = match self {
            Sort::Featured => (b.doorbuster, b.review_count).cmp(&(a.doorbuster, a.review_count)),
            Sort::PriceAsc => a.price_cents.cmp(&b.price_cents),
            Sort::PriceDesc => b.price_cents.cmp(&a.price_cents),
            Sort::Rating => b
                .rating
                .total_cmp(&a.rating)
                .then(b.review_count.cmp(&a.review_count)),
            Sort::Discount => discount(b).cmp(&discount(a)),
        };
        by.then(a.id.cmp(&b.id))
    }
}

/// The catalog this replica serves: the current [`Snapshot`], replaced as a whole when the
/// products themselves change, and kept current by sales here and refreshes from the database.
#[derive(Debug)]
pub struct Catalog {
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Bumped whenever what a page shows may have changed (stock or products).
    version: AtomicU64,
    refresh_interval: Duration,
    /// Wakes the refresh task before its time: stock moved somewhere else.
    refresh_now: Arc<Notify>,
    /// Serialises first loads, so a crowd arriving at a cold replica queries once.
    first_load: tokio::sync::Mutex<()>,
    /// One refresh at a time, so each owns [`Catalog::sales_during_read`].
    refreshing: tokio::sync::Mutex<()>,
    /// While a refresh reads the database: the lowest stock each product's sales here reported
    /// meanwhile. Those sales may have committed after the read, so the figures read are no
    /// lower than these. Held (briefly, never across an await) by every sale, and by the refresh
    /// while it stores what it read, so no sale falls between the two.
    sales_during_read: Mutex<Option<HashMap<i64, i64>>>,
}

/// The shortest refresh interval: a zero would be a busy loop.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(10);

impl Catalog {
    /// An empty catalog, loaded at first use and then read again from the database every
    /// `refresh_interval` (at least [`MIN_REFRESH_INTERVAL`]) while it is in use.
    pub fn new(refresh_interval: Duration) -> Arc<Catalog> {
        Arc::new(Catalog {
            current: RwLock::new(None),
            version: AtomicU64::new(0),
            refresh_interval: refresh_interval.max(MIN_REFRESH_INTERVAL),
            refresh_now: Arc::new(Notify::new()),
            first_load: tokio::sync::Mutex::new(()),
            refreshing: tokio::sync::Mutex::new(()),
            sales_during_read: Mutex::new(None),
        })
    }

    /// The version of what pages show: read it before reading the snapshot for a page, and keep
    /// the page only while it is unchanged.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn loaded(&self) -> Option<Arc<Snapshot>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The snapshot to serve this request from. The first call loads it (an error then is the
    /// store's, and the next call tries again) and starts the task that keeps it current.
    pub async fn snapshot(self: &Arc<Self>, db: &Db) -> Result<Arc<Snapshot>, DbError> {
        if let Some(snapshot) = self.loaded() {
            return Ok(snapshot);
        }
        let _only_one = self.first_load.lock().await;
        if let Some(snapshot) = self.loaded() {
            return Ok(snapshot);
        }
        self.refresh(db).await?;
        self.spawn_refreshes(db.clone());
        Ok(self
            .loaded()
            .expect("a refresh that succeeded leaves a snapshot"))
    }

    /// Reads the catalog again every interval, or sooner when asked, until the catalog is
    /// dropped. A failure keeps the copy held and is logged once until a refresh works again.
    fn spawn_refreshes(self: &Arc<Self>, db: Db) {
        let catalog = Arc::downgrade(self);
        let (interval, refresh_now) = (self.refresh_interval, self.refresh_now.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = refresh_now.notified() => {}
                }
                let Some(catalog) = catalog.upgrade() else {
                    return;
                };
                match crate::sampling::untraced_housekeeping(catalog.refresh(&db)).await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("the catalog is read from the database again");
                    }
                    Ok(_) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "cannot refresh the catalog; serving the copy held (stock shown may lag)");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Reads the catalog from the database: stock only when the products are unchanged, a new
    /// snapshot when they are not. Returns whether anything a page shows changed.
    pub async fn refresh(&self, db: &Db) -> Result<bool, DbError> {
        let _one_at_a_time = self.refreshing.lock().await;
        *self.lock_sales() = Some(HashMap::default());
        match db::catalog::everything(db).await {
            Ok((categories, products)) => Ok(self.store_read(categories, products)),
            Err(error) => {
                *self.lock_sales() = None;
                Err(error)
            }
        }
    }

    fn lock_sales(&self) -> std::sync::MutexGuard<'_, Option<HashMap<i64, i64>>> {
        self.sales_during_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stores what a refresh read, lowered to what sales here reported while it was reading.
    fn store_read(&self, categories: Vec<Category>, mut products: Vec<Product>) -> bool {
        let mut sales = self.lock_sales();
        if let Some(reported) = sales.take() {
            for product in &mut products {
                if let Some(&left) = reported.get(&product.id) {
                    product.stock = product.stock.min(left);
                }
            }
        }
        let changed = match self.loaded() {
            Some(snapshot) if snapshot.same_catalog(&categories, &products) => {
                snapshot.set_stock(&products)
            }
            _ => {
                let snapshot = Arc::new(Snapshot::new(categories, products));
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
                true
            }
        };
        drop(sales);
        if changed {
            self.changed();
        }
        changed
    }

    /// An order placed here left this stock: show it at once.
    ///
    /// The figures are the ones the order's own transaction left, and they only lower what is
    /// shown. Subtracting the quantities instead counted the sale twice whenever a refresh read
    /// the database between the commit and this call (a crowd checking out one deal showed -1
    /// left that way), and a late call from an earlier sale must not raise the stock shown. A
    /// refresh reading meanwhile hears of the sale too (see [`Catalog::sales_during_read`]), so
    /// it cannot put back a figure from before it. What is shown is a figure the database held;
    /// the one race left, a sale committed before an operator's restock but reported once a
    /// refresh has read the restock, shows the lower figure until the next refresh.
    pub fn sold(&self, stock_left: &[StockLeft]) {
        let mut sales = self.lock_sales();
        if let Some(snapshot) = self.loaded() {
            for left in stock_left {
                if let Some(&i) = snapshot.by_id.get(&left.product_id) {
                    snapshot.stock[i].fetch_min(left.stock, Ordering::Relaxed);
                }
            }
        }
        if let Some(reported) = sales.as_mut() {
            for left in stock_left {
                let low = reported.entry(left.product_id).or_insert(left.stock);
                *low = (*low).min(left.stock);
            }
        }
        drop(sales);
        self.changed();
    }

    /// Something a page shows changed: pages built before now are out of date.
    pub fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Stock moved somewhere else (a checkout here found less than the snapshot showed): read it
    /// again now rather than at the end of the interval.
    pub fn moved_elsewhere(&self) {
        self.refresh_now.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Catalog, Product, Snapshot, StockLeft};

    fn rated(rating: f64) -> Product {
        Product {
            id: 1,
            slug: "lamp".into(),
            category_slug: "home".into(),
            name: "Lamp".into(),
            description: "A lamp.".into(),
            price_cents: 1_000,
            list_price_cents: 2_000,
            stock: 5,
            rating,
            review_count: 3,
            doorbuster: false,
        }
    }

    /// The integer rendering reads as `{:.1}` did for every rating the catalog can hold (tenths
    /// from 0 to 5) and for ratings between them.
    #[test]
    fn rating_text_is_the_rating_to_one_decimal() {
        for hundredths in 0..=500 {
            let rating = f64::from(hundredths) / 100.0;
            if hundredths % 10 == 5 {
                continue; // a tie: {:.1} rounds the binary value, either neighbour is right
            }
            assert_eq!(
                rated(rating).rating_text().to_string(),
                format!("{rating:.1}"),
                "{rating}"
            );
        }
    }

    #[test]
    fn image_path_is_the_products_art() {
        assert_eq!(rated(4.0).image_path().to_string(), "/art/product/lamp.svg");
    }

    /// Home page deals: doorbusters only, in stock before sold out, each part deepest discount
    /// first (then by id), as the stock stands when asked.
    #[test]
    fn doorbusters_are_in_stock_first_then_by_discount() {
        let product = |id: i64, price_cents: i64, stock: i64, doorbuster: bool| Product {
            id,
            slug: format!("p{id}").into(),
            price_cents,
            list_price_cents: 1_000,
            stock,
            doorbuster,
            ..rated(4.0)
        };
        let snapshot = Snapshot::new(
            Vec::new(),
            vec![
                product(1, 500, 3, true),
                product(2, 300, 0, true),
                product(3, 300, 9, true),
                product(4, 100, 9, false),
                product(5, 500, 1, true),
                product(6, 200, 0, true),
            ],
        );
        let ids = |snapshot: &Snapshot| {
            snapshot
                .doorbusters()
                .iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&snapshot), [3, 1, 5, 6, 2]);
        snapshot.stock[2].store(0, std::sync::atomic::Ordering::Relaxed); // product 3 sells out
        snapshot.stock[1].store(4, std::sync::atomic::Ordering::Relaxed); // product 2 restocked
        assert_eq!(ids(&snapshot), [2, 1, 5, 6, 3]);
    }

    /// A catalog holding one product (id 1) with this stock, as a refresh would leave it.
    fn holding(stock: i64) -> Arc<Catalog> {
        let catalog = Catalog::new(Duration::from_secs(60));
        let mut lamp = rated(4.0);
        lamp.stock = stock;
        *catalog.current.write().unwrap() = Some(Arc::new(Snapshot::new(Vec::new(), vec![lamp])));
        catalog
    }

    fn shown(catalog: &Catalog) -> i64 {
        catalog.loaded().unwrap().product_by_id(1).unwrap().stock
    }

    /// The last unit sells: its transaction leaves 0, and a refresh reads that 0 before the sale
    /// reaches the catalog. The catalog shows 0, not -1 (the sale counted twice).
    #[test]
    fn a_sale_a_refresh_already_saw_is_not_taken_twice() {
        let catalog = holding(1);
        let sold_out = [StockLeft {
            product_id: 1,
            stock: 0,
        }];
        let lamp_at_zero = Product {
            stock: 0,
            ..rated(4.0)
        };
        assert!(catalog.loaded().unwrap().set_stock(&[lamp_at_zero]));
        catalog.sold(&sold_out);
        assert_eq!(shown(&catalog), 0);
    }

    /// A refresh reads the database, then the last unit sells and is shown (0 left), then the
    /// refresh stores what it read (1 left): the sale's figure stays.
    #[test]
    fn a_refresh_that_read_before_a_sale_does_not_put_the_stock_back() {
        let catalog = holding(1);
        *catalog.lock_sales() = Some(Default::default()); // what `refresh` does before reading
        catalog.sold(&[StockLeft {
            product_id: 1,
            stock: 0,
        }]);
        assert_eq!(shown(&catalog), 0);
        let read_before_the_sale = Product {
            stock: 1,
            ..rated(4.0)
        };
        catalog.store_read(Vec::new(), vec![read_before_the_sale.clone()]);
        assert_eq!(shown(&catalog), 0);
        // The next refresh, with no sale during its read, stores what it read (a restock, say).
        *catalog.lock_sales() = Some(Default::default());
        catalog.store_read(
            Vec::new(),
            vec![Product {
                stock: 40,
                ..read_before_the_sale
            }],
        );
        assert_eq!(shown(&catalog), 40);
    }

    /// Two sales reach the catalog out of order: the later one's lower figure stays.
    #[test]
    fn a_late_report_of_an_earlier_sale_does_not_raise_the_stock() {
        let catalog = holding(5);
        let version = catalog.version();
        catalog.sold(&[StockLeft {
            product_id: 1,
            stock: 3,
        }]);
        catalog.sold(&[StockLeft {
            product_id: 1,
            stock: 4,
        }]);
        assert_eq!(shown(&catalog), 3);
        assert!(
            catalog.version() > version,
            "pages built before are out of date"
        );
        // A product the snapshot does not hold is no error.
        catalog.sold(&[StockLeft {
            product_id: 99,
            stock: 0,
        }]);
        assert_eq!(shown(&catalog), 3);
    }
}
