-- When linkd next asks Plaid's /link/token/get about a Hosted Link token
-- (its LINK webhooks may be lost): StoredLinkToken.hosted_check_at, NULL
-- once its session is filed or its checks ended. Tokens stored before are
-- not Hosted Link tokens.
ALTER TABLE link_tokens ADD COLUMN hosted_check_ns bigint;
CREATE INDEX link_tokens_by_hosted_check ON link_tokens (hosted_check_ns, link_token)
    WHERE hosted_check_ns IS NOT NULL;
