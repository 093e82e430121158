-- health_events: health_events_apply, set-based (same signature, same rows).
--
-- 002 ran one or two UPDATE statements per element. Each UPDATE pays an
-- executor start-up that re-reads the table's CHECK constraints from their
-- stored node trees; profiled (bench/README.md), that per-statement cost
-- was most of the batch. This version runs three statements per batch,
-- whatever its size:
--   1. lock the batch's rows (in game_id order) and read status and turn;
--   2. walk the elements in stream order in memory: element i sees the
--      effect of every earlier element of its game, exactly as the
--      sequential UPDATEs did (CAS p_expected[i] -> p_to[i], else
--      health-only; RETURNING-equivalent row after element i; not_found);
--   3. one UPDATE writes each game's final status and engine_health.
-- The rows are locked from step 1 to commit, so nobody can change them
-- between the read and the write; a row inserted by another session while
-- the batch runs is seen by the next batch, as if it came just after.
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
    g_ids text[];        -- distinct games, in order of first appearance
    e_game integer[];    -- element i -> index of its game in g_ids
    f_k integer[];       -- rows found: game index, status, turn
    f_status text[];
    f_turn integer[];
    g_status text[];     -- per game: status as of the element in hand
    g_health text[];     -- (NULL status: no row)
    g_turn integer[];
    i integer;
    k integer;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    -- A NULL game id is its own game (and never has a row), as in 002.
    WITH u AS (SELECT t.g, t.ord
                 FROM unnest(p_game_ids) WITH ORDINALITY AS t(g, ord)),
         d AS (SELECT u.g, row_number() OVER (ORDER BY min(u.ord)) AS k
                 FROM u GROUP BY u.g)
    SELECT (SELECT array_agg(d.g ORDER BY d.k) FROM d),
           (SELECT array_agg(d.k::integer ORDER BY u.ord)
              FROM u JOIN d ON coalesce(d.g, '') = coalesce(u.g, '')
                           AND (d.g IS NULL) = (u.g IS NULL))
      INTO g_ids, e_game;

    SELECT array_agg(l.k), array_agg(l.status), array_agg(l.current_turn)
      INTO f_k, f_status, f_turn
      FROM (SELECT u.k::integer AS k, r.status, r.current_turn
              FROM unnest(g_ids) WITH ORDINALITY AS u(g, k)
              JOIN runtime_records r ON r.game_id = u.g
             ORDER BY r.game_id
               FOR UPDATE OF r) AS l;
    g_status := array_fill(NULL::text, ARRAY[array_length(g_ids, 1)]);
    g_health := g_status;
    g_turn := array_fill(NULL::integer, ARRAY[array_length(g_ids, 1)]);
    FOR i IN 1 .. coalesce(array_length(f_k, 1), 0) LOOP
        g_status[f_k[i]] := f_status[i];
        g_turn[f_k[i]] := f_turn[i];
    END LOOP;

    FOR i IN 1 .. n LOOP
        k := e_game[i];
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
            o_current_turn := g_turn[k];
        END IF;
        RETURN NEXT;
    END LOOP;

    UPDATE runtime_records r
       SET status = u.s, engine_health = u.h, updated_at = now()
      FROM unnest(g_ids, g_status, g_health) AS u(g, s, h)
     WHERE r.game_id = u.g AND u.s IS NOT NULL;
END
$$;
