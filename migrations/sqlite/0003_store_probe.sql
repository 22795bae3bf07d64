-- One row that readiness rewrites to prove the store can still commit a write (a full disk or a
-- read-only file still answers reads). Only used while a write has recently failed.
CREATE TABLE store_probe (
    id     INTEGER NOT NULL CONSTRAINT store_probe_pkey PRIMARY KEY CONSTRAINT store_probe_single_row CHECK (id = 1),
    probes BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO store_probe (id, probes) VALUES (1, 0);
