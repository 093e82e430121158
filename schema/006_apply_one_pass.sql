-- health_events: one pass over the rows where it is safe.
--
-- schema/002's set-based path read and locked every row of a batch
-- (SELECT ... FOR UPDATE, which writes each tuple's lock) and then updated
-- it: two passes. The final status of a game depends on its status before
-- the batch (the CAS), and PostgreSQL 15 has no RETURNING OLD; a self-join
-- in the UPDATE reads the before state from the statement's snapshot,
-- which is stale when another flow commits in between (the row the UPDATE
-- locks is re-read, the joined copy is not). So the before state is never
-- read beside the write. Instead:
--
--   a game with one element in the batch (nearly every game at full
--   batches): its CAS is the UPDATE's own WHERE (status = expected), and
--   whatever it did not write gets the health-only UPDATE. The outcome
--   follows from which statement wrote the row: transitioned by the first,
--   conflict (or health, without a transition) by the second. A row
--   another flow changes between the two is seen by the second as it is
--   then: the CAS was lost at the first, exactly as the loop path and the
--   sequential reference order it. Each row is written once.
--   a game with several elements: their fold needs the status before the
--   first, so these rows keep the locking read (game_id order), the fold
--   in memory and one UPDATE, as before.
--
-- Small batches (< 16) keep the loop (see schema/002 for why).
CREATE OR REPLACE FUNCTION health_events_apply_batch(
    p_game_ids text[],
    p_summaries text[],
    p_expected text[],
    p_to text[])
RETURNS TABLE (o_ord integer, o_outcome text, o_status text,
               o_engine_health text, o_current_turn integer)
LANGUAGE plpgsql
AS $$
DECLARE
    n integer := coalesce(array_length(p_game_ids, 1), 0);
    e_slot integer[];    -- element i -> first element of its game
    e_many boolean[];    -- element i's game has other elements too
    e_status text[];     -- (several) element i -> its row's status, turn
    e_turn integer[];    --   before the batch (NULL status: no row)
    g_status text[];     -- (several) at a game's slot: status as of the
    g_health text[];     --   element in hand, and its last summary
    r_out text[];        -- element i's outcome, status, summary, turn
    r_status text[];
    r_health text[];
    r_turn integer[];
    rec record;
    i integer;
    k integer;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF n < 16 THEN
        FOR i IN 1 .. n LOOP
            o_ord := i;
            IF p_to[i] IS NOT NULL THEN
                UPDATE runtime_records r
                   SET status = p_to[i], engine_health = p_summaries[i],
                       updated_at = now()
                 WHERE r.game_id = p_game_ids[i] AND r.status = p_expected[i]
                RETURNING r.status, r.engine_health, r.current_turn
                     INTO o_status, o_engine_health, o_current_turn;
                IF FOUND THEN
                    o_outcome := 'transitioned';
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            UPDATE runtime_records r
               SET engine_health = p_summaries[i], updated_at = now()
             WHERE r.game_id = p_game_ids[i]
            RETURNING r.status, r.engine_health, r.current_turn
                 INTO o_status, o_engine_health, o_current_turn;
            IF FOUND THEN
                o_outcome := CASE WHEN p_to[i] IS NULL THEN 'health'
                                  ELSE 'conflict' END;
            ELSE
                o_outcome := 'not_found';
                o_status := NULL;
                o_engine_health := NULL;
                o_current_turn := NULL;
            END IF;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;

    SELECT array_agg(s.slot ORDER BY s.ord), array_agg(s.many ORDER BY s.ord)
      INTO e_slot, e_many
      FROM (SELECT u.ord::integer AS ord,
                   min(u.ord::integer) OVER (PARTITION BY u.g) AS slot,
                   count(*) OVER (PARTITION BY u.g) > 1 AS many
              FROM unnest(p_game_ids) WITH ORDINALITY AS u(g, ord)) AS s;
    r_out := array_fill(NULL::text, ARRAY[n]);
    r_status := r_out;
    r_health := r_out;
    r_turn := array_fill(NULL::integer, ARRAY[n]);

    -- One element per game, a transition asked: the CAS is the WHERE.
    FOR rec IN
        WITH s AS (
            SELECT u.ord::integer AS ord, u.g
              FROM unnest(p_game_ids) WITH ORDINALITY AS u(g, ord)
             WHERE NOT e_many[u.ord] AND p_to[u.ord] IS NOT NULL),
        w AS (
            UPDATE runtime_records r
               SET status = p_to[s.ord], engine_health = p_summaries[s.ord],
                   updated_at = now()
              FROM s
             WHERE r.game_id = s.g AND r.status = p_expected[s.ord]
            RETURNING s.ord, r.status, r.engine_health, r.current_turn)
        SELECT * FROM w
    LOOP
        r_out[rec.ord] := 'transitioned';
        r_status[rec.ord] := rec.status;
        r_health[rec.ord] := rec.engine_health;
        r_turn[rec.ord] := rec.current_turn;
    END LOOP;
    -- The other single elements: health-only (a CAS lost, or none asked).
    FOR rec IN
        WITH s AS (
            SELECT u.ord::integer AS ord, u.g
              FROM unnest(p_game_ids) WITH ORDINALITY AS u(g, ord)
             WHERE NOT e_many[u.ord] AND r_out[u.ord] IS NULL),
        w AS (
            UPDATE runtime_records r
               SET engine_health = p_summaries[s.ord], updated_at = now()
              FROM s
             WHERE r.game_id = s.g
            RETURNING s.ord, r.status, r.engine_health, r.current_turn)
        SELECT * FROM w
    LOOP
        r_out[rec.ord] := CASE WHEN p_to[rec.ord] IS NULL THEN 'health'
                               ELSE 'conflict' END;
        r_status[rec.ord] := rec.status;
        r_health[rec.ord] := rec.engine_health;
        r_turn[rec.ord] := rec.current_turn;
    END LOOP;

    -- Games with several elements: lock, fold in stream order, write once.
    IF true = ANY (e_many) THEN
        SELECT array_agg(l.status ORDER BY u.ord),
               array_agg(l.current_turn ORDER BY u.ord)
          INTO e_status, e_turn
          FROM unnest(p_game_ids) WITH ORDINALITY AS u(g, ord)
          LEFT JOIN (SELECT r.game_id, r.status, r.current_turn
                       FROM runtime_records r
                      WHERE r.game_id = ANY (
                            SELECT m.g FROM unnest(p_game_ids, e_many)
                                AS m(g, many) WHERE m.many)
                      ORDER BY r.game_id
                        FOR UPDATE) AS l ON l.game_id = u.g;
        g_status := array_fill(NULL::text, ARRAY[n]);
        g_health := g_status;
        FOR i IN 1 .. n LOOP
            CONTINUE WHEN NOT e_many[i];
            k := e_slot[i];
            IF k = i THEN
                g_status[k] := e_status[i];
            END IF;
            IF g_status[k] IS NULL THEN
                CONTINUE; -- no row: not_found below
            END IF;
            IF p_to[i] IS NULL THEN
                r_out[i] := 'health';
            ELSIF g_status[k] = p_expected[i] THEN
                g_status[k] := p_to[i];
                r_out[i] := 'transitioned';
            ELSE
                r_out[i] := 'conflict';
            END IF;
            g_health[k] := p_summaries[i];
            r_status[i] := g_status[k];
            r_health[i] := p_summaries[i];
            r_turn[i] := e_turn[i];
        END LOOP;
        UPDATE runtime_records r
           SET status = u.s, engine_health = u.h, updated_at = now()
          FROM unnest(p_game_ids, g_status, g_health) AS u(g, s, h)
         WHERE r.game_id = u.g AND u.s IS NOT NULL;
    END IF;

    FOR i IN 1 .. n LOOP
        o_ord := i;
        o_outcome := coalesce(r_out[i], 'not_found');
        o_status := r_status[i];
        o_engine_health := r_health[i];
        o_current_turn := r_turn[i];
        RETURN NEXT;
    END LOOP;
END
$$;

-- CREATE OR REPLACE resets the function's settings: pin the search path
-- again (grants and ownership are kept).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION health_events_apply_batch(text[], text[], '
                   'text[], text[]) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
