-- Tables of the seed: klines, orders, fills, positions.
-- Money and quantities are NUMERIC (exact); every timestamp is timestamptz.

CREATE TABLE klines (
    symbol     text        NOT NULL,
    interval   text        NOT NULL,
    open_time  timestamptz NOT NULL,
    open       numeric     NOT NULL,
    high       numeric     NOT NULL,
    low        numeric     NOT NULL,
    close      numeric     NOT NULL,
    volume     numeric     NOT NULL CHECK (volume >= 0),
    PRIMARY KEY (symbol, interval, open_time),
    CHECK (low <= high)
);

CREATE TABLE orders (
    id                  uuid        PRIMARY KEY,
    client_order_id     text        NOT NULL UNIQUE,
    symbol              text        NOT NULL,
    side                text        NOT NULL CHECK (side IN ('buy', 'sell')),
    type                text        NOT NULL CHECK (type IN ('market', 'limit')),
    quantity            numeric     NOT NULL CHECK (quantity > 0),
    limit_price         numeric     CHECK (limit_price > 0),
    status              text        NOT NULL CHECK (
        status IN ('new', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected')
    ),
    filled_quantity     numeric     NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0),
    average_fill_price  numeric,
    strategy            text,
    reject_reason       text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CHECK (filled_quantity <= quantity)
);

CREATE INDEX orders_created_at_idx ON orders (created_at DESC);
CREATE INDEX orders_symbol_created_at_idx ON orders (symbol, created_at DESC);
-- Risk asks "how many can still fill" on every order: keep that cheap.
CREATE INDEX orders_open_idx ON orders (symbol)
    WHERE status IN ('new', 'open', 'partially_filled');

CREATE TABLE fills (
    id            uuid        PRIMARY KEY,
    order_id      uuid        NOT NULL REFERENCES orders (id),
    symbol        text        NOT NULL,
    side          text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity      numeric     NOT NULL CHECK (quantity > 0),
    price         numeric     NOT NULL CHECK (price > 0),
    fee           numeric     NOT NULL,
    -- Realized PnL this fill added to its position (net of its fee): sums per day for risk.
    realized_pnl  numeric     NOT NULL,
    ts            timestamptz NOT NULL
);

CREATE INDEX fills_order_id_idx ON fills (order_id);
CREATE INDEX fills_ts_idx ON fills (ts);

CREATE TABLE positions (
    symbol         text        PRIMARY KEY,
    quantity       numeric     NOT NULL,
    average_price  numeric     NOT NULL,
    realized_pnl   numeric     NOT NULL,
    updated_at     timestamptz NOT NULL
);
