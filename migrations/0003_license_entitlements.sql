-- Entitlements (DESIGN §6.6a): the names a license grants (`pro`, `export`), set on issue and
-- by PATCH. ADD COLUMN with a constant default is a catalogue change only (no rewrite).
ALTER TABLE licenses ADD COLUMN entitlements text[] NOT NULL DEFAULT '{}';

-- The validate hot path with the entitlements a product needs: still one statement, one round
-- trip. A license that lacks one of p_entitlements is not usable (ENTITLEMENTS_MISSING, after
-- EXPIRED), so last_seen_at is only touched for what Rust answers as VALID; the agreement is
-- proven by tests/it/licenses_rules.rs. The two-argument function of 0001 stays for functions
-- of the previous release still running while a deploy rolls over.
CREATE FUNCTION license_validate(p_key_hash bytea, p_installation_id text, p_entitlements text[])
RETURNS TABLE (id uuid, status text, expires_at timestamptz, max_installations integer, key_hash bytea,
               installations_used bigint, activated_at timestamptz, last_seen_at timestamptz,
               expired boolean, checked_at timestamptz, entitlements text[], entitlements_missing boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    l record;
BEGIN
    SELECT li.id, li.status, li.expires_at, li.max_installations, li.key_hash, li.installations_used,
           li.entitlements INTO l
    FROM licenses li WHERE li.key_hash = p_key_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    id := l.id; status := l.status; expires_at := l.expires_at; max_installations := l.max_installations;
    key_hash := l.key_hash; installations_used := l.installations_used; checked_at := now();
    entitlements := l.entitlements;
    expired := l.expires_at IS NOT NULL AND l.expires_at <= checked_at;
    entitlements_missing := NOT (l.entitlements @> coalesce(p_entitlements, '{}'::text[]));
    IF l.status = 'active' AND NOT expired AND NOT entitlements_missing THEN
        PERFORM set_config('synchronous_commit', 'off', true);
        UPDATE installations i SET last_seen_at = checked_at
        WHERE i.license_id = l.id AND i.installation_id = p_installation_id
        RETURNING i.activated_at, i.last_seen_at INTO activated_at, last_seen_at;
    ELSE
        SELECT i.activated_at, i.last_seen_at INTO activated_at, last_seen_at
        FROM installations i WHERE i.license_id = l.id AND i.installation_id = p_installation_id;
    END IF;
    RETURN NEXT;
END
$$;
