-- The catalog: categories and the products in them.
-- Forward-only. Money is integer cents; ratings are stars with one decimal.
-- Constraint names are stable because code matches on them.

CREATE TABLE categories (
    slug        TEXT    NOT NULL CONSTRAINT categories_pkey PRIMARY KEY,
    name        TEXT    NOT NULL,
    tagline     TEXT    NOT NULL,
    -- Order of the category cards on the home page.
    position    INTEGER NOT NULL
);

CREATE TABLE products (
    id               INTEGER NOT NULL CONSTRAINT products_pkey PRIMARY KEY AUTOINCREMENT,
    slug             TEXT    NOT NULL CONSTRAINT products_slug_key UNIQUE,
    category_slug    TEXT    NOT NULL CONSTRAINT products_category_fkey REFERENCES categories (slug),
    name             TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    price_cents      INTEGER NOT NULL CONSTRAINT products_price_nonnegative CHECK (price_cents >= 0),
    -- The "was" price; the saving shown is list_price_cents - price_cents.
    list_price_cents INTEGER NOT NULL CONSTRAINT products_list_price_covers_price CHECK (list_price_cents >= price_cents),
    -- Checkout decrements this conditionally; the CHECK is the last line of defence against overselling.
    stock            INTEGER NOT NULL CONSTRAINT products_stock_nonnegative CHECK (stock >= 0),
    rating           REAL    NOT NULL CONSTRAINT products_rating_range CHECK (rating >= 0 AND rating <= 5),
    review_count     INTEGER NOT NULL DEFAULT 0,
    -- Doorbusters: deep discount, small stock, shown in the home page hero.
    doorbuster       BOOLEAN NOT NULL DEFAULT FALSE,
    -- Stock at seeding time, so `doorbuster migrate --restock` can reset a demo.
    seed_stock       INTEGER NOT NULL
);

CREATE INDEX products_category_idx ON products (category_slug);
CREATE INDEX products_doorbuster_idx ON products (doorbuster) WHERE doorbuster;
