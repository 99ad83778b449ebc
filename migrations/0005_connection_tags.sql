-- Connection tags and client-credentials connections (DESIGN §6.14).
--
-- Tags are the caller's `name: value` labels of a connection (at most 10, checked by the
-- service): a jsonb object of strings, filtered with containment (`tags @> '{"org": "acme"}'`),
-- which the GIN index with jsonb_path_ops serves. ADD COLUMN with a constant default is a
-- catalogue change only; the default stays for functions of the previous release that still
-- insert without tags while a deploy rolls over.
ALTER TABLE connections ADD COLUMN tags jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(tags) = 'object');
CREATE INDEX connections_tags ON connections USING gin (tags jsonb_path_ops);

-- How the connection's tokens are obtained and renewed: `authorization_code` (a refresh
-- token, when the provider issued one) or `client_credentials` (a new token request with the
-- client's own credentials). The service refuses a value it does not know (fails closed).
ALTER TABLE connections ADD COLUMN grant_type text NOT NULL DEFAULT 'authorization_code';

-- Tags given when an authorization starts wait with its state for the callback.
ALTER TABLE oauth_states ADD COLUMN tags jsonb;
