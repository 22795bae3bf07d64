-- Orders and their lines. An order is written in one transaction together with the stock it takes,
-- so an order never exists without its lines and stock is never taken without an order.

CREATE TABLE orders (
    -- Public, unguessable order number (Crockford base32) used in /orders/{id}.
    id               TEXT    NOT NULL CONSTRAINT orders_pkey PRIMARY KEY,
    -- Client-chosen Idempotency-Key; the unique constraint makes a retried checkout find the first order.
    idempotency_key  TEXT    CONSTRAINT orders_idempotency_key_key UNIQUE,
    -- Canonical form of the request that created the order, to tell a retry from a different request
    -- reusing the same key.
    request_fingerprint TEXT NOT NULL,
    customer_name    TEXT    NOT NULL,
    email            TEXT    NOT NULL,
    address          TEXT    NOT NULL,
    city             TEXT    NOT NULL,
    postal_code      TEXT    NOT NULL,
    country          TEXT    NOT NULL,
    item_count       INTEGER NOT NULL CONSTRAINT orders_item_count_positive CHECK (item_count > 0),
    total_cents      INTEGER NOT NULL CONSTRAINT orders_total_nonnegative CHECK (total_cents >= 0),
    created_at       TEXT    NOT NULL
);

CREATE TABLE order_lines (
    order_id         TEXT    NOT NULL CONSTRAINT order_lines_order_fkey REFERENCES orders (id),
    product_id       INTEGER NOT NULL CONSTRAINT order_lines_product_fkey REFERENCES products (id),
    -- Name and price as they were when the order was placed: later catalog changes do not rewrite history.
    product_name     TEXT    NOT NULL,
    unit_price_cents INTEGER NOT NULL CONSTRAINT order_lines_price_nonnegative CHECK (unit_price_cents >= 0),
    quantity         INTEGER NOT NULL CONSTRAINT order_lines_quantity_positive CHECK (quantity > 0),
    CONSTRAINT order_lines_pkey PRIMARY KEY (order_id, product_id)
);

CREATE INDEX order_lines_product_idx ON order_lines (product_id);
