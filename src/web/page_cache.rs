//! Rendered pages kept in memory, so the pages a crowd hammers (home, product, department
//! listings) cost a lookup instead of several queries and a template render.
//!
//! Only the variant every visitor without a cart shares is cached: a page shows the cart counter
//! (and, on a product page, how many are in the cart), so a request with items in its cart cookie
//! is always rendered for that visitor. Everything else on these pages is the same for every
//! visitor of this replica: catalog, stock levels, and the footer naming the pod and node.
//!
//! Stock changes, so entries expire two ways:
//! - **A catalog version**, bumped by [`PageCache::catalog_changed`] whenever this process sees
//!   stock move (an order placed here, or a checkout refused for lack of stock, which means it
//!   moved somewhere else). An entry records the version read *before* its queries ran, so a page
//!   rendered while an order was being placed is never served as current.
//! - **A short time to live** (`DOORBUSTER_PAGE_CACHE_TTL`, 1 s by default), which bounds how
//!   stale a page can be when another replica sharing PostgreSQL sells the stock, or an operator
//!   restocks from another process. `0s` turns the cache off. When a page outlives it, the first
//!   request re-renders it and the others are served the old copy meanwhile: otherwise every
//!   request arriving during the render (64 at once under `wrk -c64`) would render it too, once
//!   a second. Past twice the time to live (that render failed) no request is served the old copy.
//!
//! The number of entries is bounded ([`MAX_ENTRIES`]); keys only ever name pages that rendered
//! successfully (known products and departments), so strangers cannot fill it with junk URLs.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::db::catalog::Sort;

/// Most pages held at once: with the seeded catalog every product page, every department listing
/// in every order and the home page fit many times over (each is 10 to 30 KB).
pub const MAX_ENTRIES: usize = 512;

/// Which page: the parts of the URL the page depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PageKey {
    Home,
    Product(String),
    Category { slug: String, sort: Sort, page: i64 },
}

#[derive(Debug)]
struct Entry {
    version: u64,
    rendered: Instant,
    html: Bytes,
    /// Set by the request that re-renders this page once it has outlived the time to live.
    refresh_claimed: AtomicBool,
}

/// The cache; one per process, shared through [`crate::state::AppState`].
#[derive(Debug)]
pub struct PageCache {
    ttl: Duration,
    version: AtomicU64,
    /// foldhash rather than SipHash: every request for a page hashes its key, and SipHash was
    /// 2% of serving a cached product page. Keys are only inserted for pages that rendered
    /// (bounded, see [`MAX_ENTRIES`]), so there is no flooding to resist.
    entries: RwLock<HashMap<PageKey, Entry, foldhash::fast::RandomState>>,
}

impl PageCache {
    /// A cache whose entries live at most `ttl`; a zero `ttl` caches nothing.
    pub fn new(ttl: Duration) -> PageCache {
        PageCache {
            ttl,
            version: AtomicU64::new(0),
            entries: RwLock::new(HashMap::default()),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The current catalog version: read it before querying for a page, then [`Self::put`] the
    /// page with it.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Stock moved: every page rendered before now is out of date.
    pub fn catalog_changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The page, if it was rendered from the current catalog version within the time to live
    /// (or within twice that while another request re-renders it).
    pub fn get(&self, key: &PageKey) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        if entry.version != self.version() {
            return None;
        }
        let age = entry.rendered.elapsed();
        // Outlived the time to live only: the first caller re-renders, the others get this copy.
        let served = age < self.ttl
            || (age < self.ttl * 2 && entry.refresh_claimed.swap(true, Ordering::Relaxed));
        served.then(|| entry.html.clone())
    }

    /// Keeps a page rendered from catalog `version` (read before its queries ran).
    pub fn put(&self, key: PageKey, version: u64, html: Bytes) {
        if !self.enabled() || version != self.version() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            // Full: drop what has expired; if nothing has, leave this page uncached.
            let current = self.version();
            entries
                .retain(|_, entry| entry.version == current && entry.rendered.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            key,
            Entry {
                version,
                rendered: Instant::now(),
                html,
                refresh_claimed: AtomicBool::new(false),
            },
        );
    }

    /// How many pages are held (expired ones included until they are replaced).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn a_page_is_served_until_the_catalog_changes() {
        let cache = PageCache::new(Duration::from_secs(60));
        let version = cache.version();
        cache.put(PageKey::Home, version, page("home"));
        assert_eq!(cache.get(&PageKey::Home), Some(page("home")));
        assert_eq!(cache.get(&PageKey::Product("x".into())), None);
        cache.catalog_changed();
        assert_eq!(cache.get(&PageKey::Home), None);
    }

    #[test]
    fn a_page_rendered_while_stock_moved_is_not_kept() {
        let cache = PageCache::new(Duration::from_secs(60));
        let version = cache.version();
        cache.catalog_changed(); // an order lands while the page is being rendered
        cache.put(PageKey::Home, version, page("stale"));
        assert_eq!(cache.get(&PageKey::Home), None);
    }

    #[test]
    fn pages_expire_and_a_zero_ttl_caches_nothing() {
        let cache = PageCache::new(Duration::from_millis(100));
        cache.put(PageKey::Home, cache.version(), page("home"));
        assert!(cache.get(&PageKey::Home).is_some());
        std::thread::sleep(Duration::from_millis(120));
        // The first request after the time to live re-renders the page...
        assert_eq!(cache.get(&PageKey::Home), None);
        // ...and the others are served the old copy meanwhile, but not past twice the TTL.
        assert_eq!(cache.get(&PageKey::Home), Some(page("home")));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(cache.get(&PageKey::Home), None);
        cache.put(PageKey::Home, cache.version(), page("again"));
        assert_eq!(cache.get(&PageKey::Home), Some(page("again")));

        let off = PageCache::new(Duration::ZERO);
        off.put(PageKey::Home, off.version(), page("home"));
        assert_eq!(off.get(&PageKey::Home), None);
        assert!(off.is_empty());
    }

    #[test]
    fn the_number_of_pages_is_bounded() {
        let cache = PageCache::new(Duration::from_secs(60));
        for n in 0..MAX_ENTRIES + 10 {
            cache.put(PageKey::Product(n.to_string()), cache.version(), page("p"));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // Once what is held has expired, new pages take its place.
        cache.catalog_changed();
        cache.put(PageKey::Home, cache.version(), page("home"));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&PageKey::Home).is_some());
    }
}
