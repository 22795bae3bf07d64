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
//! Browsers ask for compressed pages, and compressing a 25 KB page on every request costs more
//! than serving it: each entry keeps a gzip copy, made by the first request that accepts gzip and
//! shared by the rest until the entry is replaced.
//!
//! The number of entries is bounded ([`MAX_ENTRIES`]); keys only ever name pages that rendered
//! successfully (known products and departments), so strangers cannot fill it with junk URLs.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::shop::catalog::Sort;

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
    /// `html` gzip-encoded, made when first asked for.
    gzip: OnceLock<Bytes>,
    /// Set by the request that re-renders this page once it has outlived the time to live.
    refresh_claimed: AtomicBool,
}

/// A cached page as it goes out: its HTML, or that HTML gzip-encoded.
#[derive(Debug, Clone)]
pub struct CachedPage {
    pub body: Bytes,
    pub gzipped: bool,
}

/// gzip at the default level, the one tower-http's layer uses for pages it compresses itself.
fn gzip(html: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(html.len() / 4),
        flate2::Compression::default(),
    );
    // Writing into a `Vec` cannot fail.
    encoder.write_all(html).expect("gzip into memory");
    Bytes::from(encoder.finish().expect("gzip into memory"))
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
    pub fn get(&self, key: &PageKey, accepts_gzip: bool) -> Option<CachedPage> {
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
        served.then(|| CachedPage {
            body: if accepts_gzip {
                entry.gzip.get_or_init(|| gzip(&entry.html)).clone()
            } else {
                entry.html.clone()
            },
            gzipped: accepts_gzip,
        })
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
                gzip: OnceLock::new(),
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

    fn html(cache: &PageCache, key: &PageKey) -> Option<Bytes> {
        cache.get(key, false).map(|page| {
            assert!(!page.gzipped);
            page.body
        })
    }

    #[test]
    fn clients_that_accept_gzip_share_one_compressed_copy() {
        use std::io::Read as _;
        let cache = PageCache::new(Duration::from_secs(60));
        let text = "<p>Doorbuster deals</p>".repeat(200);
        cache.put(PageKey::Home, cache.version(), Bytes::from(text.clone()));
        let first = cache.get(&PageKey::Home, true).unwrap();
        assert!(first.gzipped);
        assert!(
            first.body.len() < text.len() / 10,
            "{} bytes",
            first.body.len()
        );
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&first.body[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, text);
        // Made once: the next request gets the same bytes, not a second compression.
        let second = cache.get(&PageKey::Home, true).unwrap();
        assert_eq!(second.body.as_ptr(), first.body.as_ptr());
        assert_eq!(html(&cache, &PageKey::Home).unwrap(), text);
        // A new copy of the page brings its own compressed copy.
        cache.put(PageKey::Home, cache.version(), page("again"));
        let again = cache.get(&PageKey::Home, true).unwrap();
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&again.body[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, "again");
    }

    #[test]
    fn a_page_is_served_until_the_catalog_changes() {
        let cache = PageCache::new(Duration::from_secs(60));
        let version = cache.version();
        cache.put(PageKey::Home, version, page("home"));
        assert_eq!(html(&cache, &PageKey::Home), Some(page("home")));
        assert_eq!(html(&cache, &PageKey::Product("x".into())), None);
        cache.catalog_changed();
        assert_eq!(html(&cache, &PageKey::Home), None);
    }

    #[test]
    fn a_page_rendered_while_stock_moved_is_not_kept() {
        let cache = PageCache::new(Duration::from_secs(60));
        let version = cache.version();
        cache.catalog_changed(); // an order lands while the page is being rendered
        cache.put(PageKey::Home, version, page("stale"));
        assert_eq!(html(&cache, &PageKey::Home), None);
    }

    #[test]
    fn pages_expire_and_a_zero_ttl_caches_nothing() {
        let cache = PageCache::new(Duration::from_millis(100));
        cache.put(PageKey::Home, cache.version(), page("home"));
        assert!(html(&cache, &PageKey::Home).is_some());
        std::thread::sleep(Duration::from_millis(120));
        // The first request after the time to live re-renders the page...
        assert_eq!(html(&cache, &PageKey::Home), None);
        // ...and the others are served the old copy meanwhile, but not past twice the TTL.
        assert_eq!(html(&cache, &PageKey::Home), Some(page("home")));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(html(&cache, &PageKey::Home), None);
        cache.put(PageKey::Home, cache.version(), page("again"));
        assert_eq!(html(&cache, &PageKey::Home), Some(page("again")));

        let off = PageCache::new(Duration::ZERO);
        off.put(PageKey::Home, off.version(), page("home"));
        assert_eq!(html(&off, &PageKey::Home), None);
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
        assert!(html(&cache, &PageKey::Home).is_some());
    }
}
