-- The connection an exchange claim is for (a connected redirect being
-- exchanged: linkd.PendingLink), kept while the claim is held so that a
-- claim on any replica whose link repeats it waits for its outcome:
-- institution_id to find the pending links at one institution, link the
-- storagev1.PendingLink (its accounts' names and masks). Both are NULL for
-- a claim without a link and once a claim is released.
ALTER TABLE exchange_claims ADD COLUMN institution_id text;
ALTER TABLE exchange_claims ADD COLUMN link bytea;
CREATE INDEX exchange_claims_by_institution ON exchange_claims (institution_id, client_user_id)
    WHERE institution_id IS NOT NULL;

-- Row locks that serialize the claims that carry a link and could repeat
-- each other (one user's at one institution; everyone's at one institution
-- when duplicates count across users), so that of two at once the second
-- sees the first: a claim locks the stripe its key hashes to
-- (linkGateStripe) before it looks for pending links. A fixed number of
-- rows, made here: two unrelated keys on one stripe only queue for a
-- moment.
CREATE TABLE link_gates (
    stripe integer PRIMARY KEY
);
INSERT INTO link_gates (stripe) SELECT generate_series(0, 1023);
