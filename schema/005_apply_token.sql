-- health_events: a fencing token is the epoch and the holder together, and
-- the apply's lock waits are bounded.
--
-- The apply checked the lease's epoch only. A lease row rolled back by one
-- epoch (a failover that lost its last update, a restore) hands epoch E to
-- a second holder while the first still writes with E: both passed the
-- check until the first one's renewal failed. Now the apply also names the
-- holder's token, and is refused (HE001, nothing written) unless the lease
-- row holds both.
--
-- An apply waited on the row locks of other flows without bound, holding
-- the lease row FOR KEY SHARE all the while: an apply orphaned by a killed
-- leader, waiting on a row another transaction kept, held every takeover
-- until that transaction ended. Now the apply sets lock_timeout (p_lock_ms,
-- the caller's lease / 4) for its own transaction before it takes any lock:
-- a row held longer fails the batch with 55P03, which the caller retries
-- (a lock wait is not a data error), and the lease row is let go. It is set
-- here because a statement_timeout set inside a function does not apply
-- to the statement already running, while lock_timeout applies to every
-- lock wait that starts after it; callers add a per-session
-- statement_timeout of their own for everything else.

-- The body of schema/004 stays as it was, under a name of its own; the one
-- entry point is the function below (an older build is refused: undefined
-- function).
ALTER FUNCTION health_events_apply(text, bigint, bigint, bigint, bigint,
                                   bigint, text[], text[], text[], text[],
                                   bigint, bigint, text)
    RENAME TO health_events_apply_position;

-- health_events_apply of schema/004 with two more arguments:
--   p_token   the holder's token (health_events_lease's p_token): the
--             lease row must hold p_epoch and p_token, else HE001;
--   p_lock_ms lock_timeout of this transaction in ms, 1..600000 (22023
--             otherwise); a lock not granted by then fails with 55P03.
CREATE FUNCTION health_events_apply(
    p_lease text,
    p_epoch bigint,
    p_after_ms bigint,
    p_after_seq bigint,
    p_last_ms bigint,
    p_last_seq bigint,
    p_game_ids text[],
    p_summaries text[],
    p_expected text[],
    p_to text[],
    p_refused_ms bigint,
    p_refused_seq bigint,
    p_refused_reason text,
    p_token text,
    p_lock_ms integer)
RETURNS TABLE (o_ord integer, o_outcome text, o_status text,
               o_engine_health text, o_current_turn integer)
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_lock_ms IS NULL OR p_lock_ms < 1 OR p_lock_ms > 600000 THEN
        RAISE EXCEPTION 'health_events_apply: lock timeout of % ms is outside 1..600000', p_lock_ms
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('lock_timeout', p_lock_ms || 'ms', true);
    PERFORM 1 FROM health_events_leader
      WHERE name = p_lease AND epoch = p_epoch AND token = p_token
      FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'health_events_apply: epoch % of lease "%" is not held by this holder', p_epoch, p_lease
            USING ERRCODE = 'HE001';
    END IF;
    RETURN QUERY SELECT * FROM health_events_apply_position(
        p_lease, p_epoch, p_after_ms, p_after_seq, p_last_ms, p_last_seq,
        p_game_ids, p_summaries, p_expected, p_to, p_refused_ms,
        p_refused_seq, p_refused_reason);
END
$$;

DO $$
DECLARE
    f text := 'health_events_apply(text, bigint, bigint, bigint, bigint, '
              'bigint, text[], text[], text[], text[], bigint, bigint, '
              'text, text, integer)';
BEGIN
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                   f, current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
END
$$;
