-- The shop database of the web-stack testbed, filled deterministically from :seed (every value
-- is derived from md5(seed, table, row), so the same seed gives the same bytes).
-- Run as the superuser in database shop: psql -v seed=1 -v products=20000 -v users=10000 -v orders=20000 -f seed.sql
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SET ROLE shop;

-- a non-negative 48-bit number from a string
CREATE FUNCTION h(t text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT ('x' || substr(md5(t), 1, 12))::bit(48)::bigint $$;

CREATE TABLE products (
  id int PRIMARY KEY,
  category int NOT NULL,
  name text NOT NULL,
  description text NOT NULL,
  price numeric(10, 2) NOT NULL,
  stock int NOT NULL
);
INSERT INTO products
SELECT i,
       1 + h(:'seed' || '/pc/' || i) % 50,
       initcap(substr(md5(:'seed' || '/pn/' || i), 1, 6)) || ' ' || initcap(substr(md5(:'seed' || '/pm/' || i), 1, 9)),
       (SELECT string_agg(md5(:'seed' || '/pd/' || i || '/' || k), ' ') FROM generate_series(0, h(:'seed' || '/pl/' || i) % 12) k),
       1 + (h(:'seed' || '/pp/' || i) % 50000) / 100.0,
       1000 + h(:'seed' || '/ps/' || i) % 1000
FROM generate_series(1, :products) i;
CREATE INDEX products_category ON products (category, id);

CREATE TABLE users (
  id int PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  password_hash text NOT NULL,
  address text NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO users
SELECT i,
       initcap(substr(md5(:'seed' || '/un/' || i), 1, 7)) || ' ' || initcap(substr(md5(:'seed' || '/uf/' || i), 1, 10)),
       substr(md5(:'seed' || '/ue/' || i), 1, 10) || '@example.' || (ARRAY['com', 'org', 'net'])[1 + h(:'seed' || '/ud/' || i) % 3],
       '$2b$12$' || md5(:'seed' || '/uh/' || i) || substr(md5(:'seed' || '/ug/' || i), 1, 21),
       (1 + h(:'seed' || '/ua/' || i) % 999) || ' ' || initcap(substr(md5(:'seed' || '/us/' || i), 1, 8)) || ' Street, '
         || (10000 + h(:'seed' || '/uz/' || i) % 89999) || ' ' || initcap(substr(md5(:'seed' || '/uc/' || i), 1, 7)),
       timestamptz '2024-01-01' + (h(:'seed' || '/ut/' || i) % (86400 * 365)) * interval '1 second'
FROM generate_series(1, :users) i;

CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  user_id int NOT NULL,
  product_id int NOT NULL,
  qty int NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (user_id, product_id, qty, created_at)
SELECT 1 + h(:'seed' || '/ou/' || i) % :users,
       1 + h(:'seed' || '/op/' || i) % :products,
       1 + h(:'seed' || '/oq/' || i) % 3,
       now() - (h(:'seed' || '/ot/' || i) % (86400 * 30)) * interval '1 second'
FROM generate_series(1, :orders) i;
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_created ON orders (created_at);

RESET ROLE;
ANALYZE;
SELECT pg_stat_statements_reset();
