-- health_events: apply one batch of engine-health mutations in stream order.
--
-- One call per batch (one statement, one round trip, one transaction). For
-- each element i, in order:
--   p_to[i] set:  CAS  status p_expected[i] -> p_to[i] with engine_health;
--                 when no row is in p_expected[i], health-only (D2 fallback)
--   p_to[i] NULL: health-only, unguarded by status (D3)
-- and returns the row as it is right after element i (D5), or outcome
-- 'not_found'. The CAS and the fallback are two separate UPDATEs run in
-- sequence (never two data-modifying CTEs on the same row), so a later
-- element for the same game sees the effect of an earlier one.
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
    i integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_game_ids, 1), 0) LOOP
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
END
$$;

-- engine_health holds this consumer's short summaries; bound it so every
-- row fits the consumer's fixed buffer (HE_HEALTH_MAX) and the snapshot
-- never has to truncate what the database holds.
ALTER TABLE runtime_records
    ADD CONSTRAINT runtime_records_engine_health_length
    CHECK (octet_length(engine_health) < 128);
