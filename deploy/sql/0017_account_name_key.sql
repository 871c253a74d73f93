-- One customer, one account (DOMAIN.md section 2): a credit code that arrives
-- for a company first known by name attaches to that account (ka_accounts.c).
-- Here: every account's normalized name, so accounts of one name can be
-- found, and the conflicts (one name, accounts with different codes) that
-- kactl accounts --conflicts lists.

-- The name normalization of ka_account_normalize_name (ka_account_key.c), in
-- SQL: full-width forms U+FF01..U+FF5E folded to ASCII, white space (ASCII,
-- U+00A0, U+3000) trimmed and collapsed to one space, ASCII case folded.
-- 'name:<normalized>', or NULL for a blank or overlong name.
CREATE FUNCTION ka_account_name_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN n = '' OR length(n) > 500 THEN NULL ELSE 'name:' || n END
    FROM (SELECT translate(btrim(regexp_replace(
        translate(name, '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～',
                  '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~'),
        '[ \t\n\v\f\r\u00a0\u3000]+', ' ', 'g'), ' '),
        'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') AS n) s
$$;

-- An account keyed by name keeps that key as its name key, also once a code
-- attached to it; an account keyed by code takes the name of the event that
-- created it (none when that event gave no name: its display name is then
-- the key).
ALTER TABLE account ADD COLUMN name_key text GENERATED ALWAYS AS (
    CASE WHEN starts_with(canonical_key, 'name:') THEN canonical_key
         WHEN display_name = canonical_key THEN NULL
         ELSE ka_account_name_key(display_name) END) STORED;
CREATE INDEX account_name_key ON account (name_key) WHERE name_key IS NOT NULL;

-- Accounts of one name kept apart: each beside the name's account (the one
-- keyed by the name, else the first created), with when and by which event
-- the second of the two was first seen (the conflict's start).
-- The name's account held another code (or none yet, when the code came
-- first and the name alone later): the product never merges them, an
-- operator corrects the source.
CREATE VIEW account_conflict AS
SELECT p.name_key, p.id AS account_id, p.credit_code, p.display_name, p.owner_rep_id,
       p.created_at, o.id AS other_account_id, o.credit_code AS other_credit_code,
       o.display_name AS other_display_name, o.owner_rep_id AS other_owner_rep_id,
       greatest(p.created_at, o.created_at) AS seen_at,
       CASE WHEN o.created_at >= p.created_at THEN o.created_event_id
            ELSE p.created_event_id END AS seen_event_id
FROM account p
JOIN account o ON o.name_key = p.name_key AND o.id <> p.id
WHERE p.id = (SELECT x.id FROM account x WHERE x.name_key = p.name_key
              ORDER BY starts_with(x.canonical_key, 'name:') DESC, x.created_at, x.id LIMIT 1);
