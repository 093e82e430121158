-- health_events: apply one batch of engine-health mutations in stream order.
--
-- One call per batch (one statement, one round trip, one transaction). For
-- each element i, in order:
--   p_to[i] set:  CAS  status p_expected[i] -> p_to[i] with engine_health;
--                 when no row is in p_expected[i], health-only (D2 fallback)
--   p_to[i] NULL: health-only, unguarded by status (D3)
-- and returns the row as it is right after element i (D5), or outcome
-- 'not_found'. A later element for the same game sees the effect of every
-- earlier one, so a batch behaves exactly as one entry at a time.
--
-- Two paths, same rows and effects:
--   n < 16: a loop, per element one CAS UPDATE and, when it matched no row,
--           one health-only UPDATE (two separate UPDATEs run in sequence,
--           never two data-modifying CTEs on the same row);
--   else:   one statement locks the batch's rows (FOR UPDATE, game_id
--           order) and reads status and turn per element, the elements are
--           folded in memory in stream order (first element of a game = its
--           slot), one UPDATE writes each game's final status and
--           engine_health.
-- Why: bench/run's profile showed the loop's cost at full batches is per
-- statement, not per row: each UPDATE pays an executor start-up that
-- re-reads the table's CHECK constraints from their node trees
-- (pg_strtok, readDatum), one or two UPDATEs per element. A set-based path
-- for every size (three statements per batch) fixed large batches but
-- tripled the cost of one element, so small batches (the latency case: a
-- few entries per XREAD, and HEALTH_EVENTS_BATCH=1) keep the loop.
-- In the set path the rows stay locked from the read to commit, so nobody
-- changes them in between; a row inserted by another session while a large
-- batch runs is seen by the next batch, as if it came just after. Both
-- paths agree on random batches: the schema suite
-- (tests/schema/test_schema.c, apply_matches_sequential_reference) checks
-- this function against the loop alone on every test run.
CREATE OR REPLACE FUNCTION health_events_apply(
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
    e_status text[];     -- element i -> its row's status, turn before
    e_turn integer[];    --   the batch (NULL status: no row)
    g_status text[];     -- at a game's slot: status as of the element
    g_health text[];     --   in hand, and its last summary
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

    SELECT array_agg(s.slot ORDER BY s.ord), array_agg(s.status ORDER BY s.ord),
           array_agg(s.current_turn ORDER BY s.ord)
      INTO e_slot, e_status, e_turn
      FROM (SELECT u.ord::integer AS ord,
                   min(u.ord::integer) OVER (PARTITION BY u.g) AS slot,
                   l.status, l.current_turn
              FROM unnest(p_game_ids) WITH ORDINALITY AS u(g, ord)
              LEFT JOIN (SELECT r.game_id, r.status, r.current_turn
                           FROM runtime_records r
                          WHERE r.game_id = ANY (p_game_ids)
                          ORDER BY r.game_id
                            FOR UPDATE) AS l ON l.game_id = u.g) AS s;
    g_status := array_fill(NULL::text, ARRAY[n]);
    g_health := g_status;
    FOR i IN 1 .. n LOOP
        k := e_slot[i];
        IF k = i THEN
            g_status[k] := e_status[i];
        END IF;
        o_ord := i;
        IF g_status[k] IS NULL THEN
            o_outcome := 'not_found';
            o_status := NULL;
            o_engine_health := NULL;
            o_current_turn := NULL;
        ELSE
            IF p_to[i] IS NULL THEN
                o_outcome := 'health';
            ELSIF g_status[k] = p_expected[i] THEN
                g_status[k] := p_to[i];
                o_outcome := 'transitioned';
            ELSE
                o_outcome := 'conflict';
            END IF;
            g_health[k] := p_summaries[i];
            o_status := g_status[k];
            o_engine_health := p_summaries[i];
            o_current_turn := e_turn[i];
        END IF;
        RETURN NEXT;
    END LOOP;
    UPDATE runtime_records r
       SET status = u.s, engine_health = u.h, updated_at = now()
      FROM unnest(p_game_ids, g_status, g_health) AS u(g, s, h)
     WHERE r.game_id = u.g AND u.s IS NOT NULL;
END
$$;

-- engine_health holds this consumer's short summaries; bound it so every
-- row fits the consumer's fixed buffer (HE_HEALTH_MAX) and the snapshot
-- never has to truncate what the database holds.
ALTER TABLE runtime_records
    ADD CONSTRAINT runtime_records_engine_health_length
    CHECK (octet_length(engine_health) < 128);
