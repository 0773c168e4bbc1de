-- 0001: linkd's tables. Every record is the protobuf encoding of the message
-- the bbolt store keeps (column "record"), beside the columns linkd looks
-- it up or orders it by. Times are Unix nanoseconds (bigint, "_ns"): the
-- store compares them with the caller's clock exactly, as the bbolt store
-- does, where timestamptz would round to microseconds. The plain public
-- token is never written (only its SHA-256), and access tokens only sealed.
-- schema_migrations, which serializes migrations, is created by the code
-- (migrate.go) before any file runs.

-- Link tokens linkd issued: storagev1.StoredLinkToken.
CREATE TABLE link_tokens (
    link_token     text PRIMARY KEY,
    client_user_id text   NOT NULL,
    expires_ns     bigint,          -- expiration; NULL when Plaid gave none
    record         bytea  NOT NULL
);
CREATE INDEX link_tokens_by_expiry ON link_tokens (expires_ns);

-- The renewal of a dead link token: the fresh token that replaced it.
CREATE TABLE link_token_renewals (
    dead_link_token  text PRIMARY KEY REFERENCES link_tokens (link_token) ON DELETE CASCADE,
    fresh_link_token text NOT NULL REFERENCES link_tokens (link_token) ON DELETE CASCADE
);
CREATE INDEX link_token_renewals_by_fresh ON link_token_renewals (fresh_link_token);

-- Link sessions: linkdv1.LinkSession (never with a public token), by
-- linkd.SessionStart for reports and retention.
CREATE TABLE link_sessions (
    link_session_id text PRIMARY KEY,
    started_ns      bigint NOT NULL,
    record          bytea  NOT NULL
);
CREATE INDEX link_sessions_by_start ON link_sessions (started_ns, link_session_id);

-- Items: linkdv1.Item, listed per user and per institution, oldest first.
CREATE TABLE items (
    item_id        text PRIMARY KEY,
    client_user_id text   NOT NULL,
    institution_id text   NOT NULL,
    created_ns     bigint NOT NULL,
    record         bytea  NOT NULL
);
CREATE INDEX items_by_user ON items (client_user_id, created_ns, item_id);
CREATE INDEX items_by_institution ON items (institution_id, created_ns, item_id);

-- Each Item's access token, sealed by the Sealer:
-- storagev1.SealedAccessToken. key_id repeats the record's, for re-sealing.
CREATE TABLE access_tokens (
    item_id text PRIMARY KEY REFERENCES items (item_id) ON DELETE CASCADE,
    key_id  text  NOT NULL,
    record  bytea NOT NULL
);
CREATE INDEX access_tokens_by_key ON access_tokens (key_id, item_id);

-- Public tokens spent on an Item, by SHA-256.
CREATE TABLE public_token_uses (
    public_token_sha256 bytea PRIMARY KEY,
    item_id             text   NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    client_user_id      text   NOT NULL,
    exchanged_ns        bigint NOT NULL
);
CREATE INDEX public_token_uses_by_item ON public_token_uses (item_id);

-- Claims on the exchange of a public token (linkd.ExchangeClaim), by
-- SHA-256. owner is '' once released with an unknown outcome; earlier
-- says a claim before the current one ended without an outcome.
CREATE TABLE exchange_claims (
    public_token_sha256 bytea PRIMARY KEY,
    client_user_id      text    NOT NULL,
    owner               text    NOT NULL,
    expires_ns          bigint  NOT NULL,
    earlier             boolean NOT NULL
);

-- Queued refreshes of an Item's accounts and institution.
CREATE TABLE item_refreshes (
    item_id text PRIMARY KEY REFERENCES items (item_id) ON DELETE CASCADE,
    due_ns  bigint NOT NULL
);
CREATE INDEX item_refreshes_by_due ON item_refreshes (due_ns, item_id);

-- Verified webhook deliveries, by the hash of the signed JWT, so that a
-- delivery is kept once.
CREATE TABLE webhook_deliveries (
    delivery_id text PRIMARY KEY,
    recorded_ns bigint NOT NULL
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (recorded_ns);

-- Recorded webhooks: storagev1.StoredWebhook, oldest first.
CREATE TABLE webhooks (
    received_ns bigint NOT NULL,
    delivery_id text   NOT NULL,
    item_id     text   NOT NULL,
    record      bytea  NOT NULL,
    PRIMARY KEY (received_ns, delivery_id)
);

-- Leases for background jobs (TryLease): one row per job name.
CREATE TABLE linkd_leases (
    name       text PRIMARY KEY,
    owner      text   NOT NULL,
    expires_ns bigint NOT NULL
);
