-- health_events: the applied position lives with the rows.
--
-- What has been applied was recorded only in Redis, after this database's
-- transaction, and the apply was a status compare-and-set with no memory
-- of the entries it had seen: a replay (a commit lost or never made, the
-- offset key deleted) applied entries again over newer writes of other
-- flows, and a rollback of this database (an asynchronous standby
-- promoted, a point-in-time restore) was never repaired.
--
-- Now every apply records, in the same transaction as the rows, the id of
-- the last entry it covers, and is a compare-and-set on it: it names the
-- position its batch follows and is refused (SQLSTATE HE002, nothing
-- written) when the stored one differs. An entry is applied at most once
-- and none is jumped over. Ids are kept and compared as (ms, seq) numbers,
-- never as text ("9-0" < "10-0").
--
-- A table of its own, not the lease row: an apply must not lock what the
-- holder's renewals update.
CREATE TABLE health_events_progress (
    name       text        PRIMARY KEY,
    ms         bigint      NOT NULL CHECK (ms >= 0),
    seq        bigint      NOT NULL CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Entries the database refused (a data error: a dead letter), recorded
-- with the position that moved over them, so that a repair re-publishing
-- the dead letters of a lost commit can say what the database said. Kept
-- for a week of stream time (HE_REFUSED_KEEP below); a repair older than
-- that sends the entry's own fields with a generic reason.
CREATE TABLE health_events_refused (
    name   text   NOT NULL,
    ms     bigint NOT NULL,
    seq    bigint NOT NULL,
    reason text   NOT NULL,
    PRIMARY KEY (name, ms, seq)
);

-- The old entry point applied without recording the position: an older
-- build still running is refused (undefined function) instead.
DROP FUNCTION health_events_apply(text, bigint, text[], text[], text[], text[]);

-- Apply one batch for the holder of epoch p_epoch of lease p_lease (also
-- the progress row's name), following applied position p_after (ms, seq)
-- and ending at p_last, the id of the batch's last entry (every entry
-- moves the position: p_game_ids may be empty, for a batch of undecodable
-- entries, or to step over an entry the database refused, whose id and
-- reason p_refused_* then record).
--   HE001: the epoch is not the lease's current one;
--   HE002: the stored position is not p_after (no row yet: any p_after is
--          taken, once, which is how a deployment upgrades from the Redis
--          offset);
--   22023: arrays of the wrong shape, or p_last not after p_after.
-- Nothing is written on a refusal.
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
    p_refused_reason text)
RETURNS TABLE (o_ord integer, o_outcome text, o_status text,
               o_engine_health text, o_current_turn integer)
LANGUAGE plpgsql
AS $$
DECLARE
    n integer := coalesce(cardinality(p_game_ids), 0);
    keep constant bigint := 7 * 86400000; -- HE_REFUSED_KEEP, in ms
    s_ms bigint;
    s_seq bigint;
BEGIN
    IF coalesce(array_ndims(p_game_ids), 1) <> 1
       OR coalesce(array_ndims(p_summaries), 1) <> 1
       OR coalesce(array_ndims(p_expected), 1) <> 1
       OR coalesce(array_ndims(p_to), 1) <> 1
       OR coalesce(cardinality(p_summaries), 0) <> n
       OR coalesce(cardinality(p_expected), 0) <> n
       OR coalesce(cardinality(p_to), 0) <> n
       OR coalesce(array_lower(p_game_ids, 1), 1) <> 1
       OR coalesce(array_lower(p_summaries, 1), 1) <> 1
       OR coalesce(array_lower(p_expected, 1), 1) <> 1
       OR coalesce(array_lower(p_to, 1), 1) <> 1
       OR array_position(p_game_ids, NULL) IS NOT NULL
       OR array_position(p_summaries, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'health_events_apply: arrays must be one-dimensional, 1-based, of one length, game ids and summaries not null'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_after_ms IS NULL OR p_after_seq IS NULL OR p_last_ms IS NULL
       OR p_last_seq IS NULL OR p_after_ms < 0 OR p_after_seq < 0
       OR (p_last_ms, p_last_seq) <= (p_after_ms, p_after_seq)
       OR (p_refused_reason IS NOT NULL
           AND (p_refused_ms IS NULL OR p_refused_seq IS NULL
                OR (p_refused_ms, p_refused_seq) <= (p_after_ms, p_after_seq)
                OR (p_refused_ms, p_refused_seq) > (p_last_ms, p_last_seq))) THEN
        RAISE EXCEPTION 'health_events_apply: positions must be stream ids with % - % after % - % (and a refused id between them)',
            p_last_ms, p_last_seq, p_after_ms, p_after_seq
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM 1 FROM health_events_leader
      WHERE name = p_lease AND epoch = p_epoch
      FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'health_events_apply: epoch % is not the current epoch of lease "%"', p_epoch, p_lease
            USING ERRCODE = 'HE001';
    END IF;
    SELECT p.ms, p.seq INTO s_ms, s_seq FROM health_events_progress p
      WHERE p.name = p_lease FOR UPDATE;
    IF FOUND THEN
        IF (s_ms, s_seq) <> (p_after_ms, p_after_seq) THEN
            RAISE EXCEPTION 'health_events_apply: the applied position of "%" is %-%, not %-%',
                p_lease, s_ms, s_seq, p_after_ms, p_after_seq
                USING ERRCODE = 'HE002';
        END IF;
        UPDATE health_events_progress
           SET ms = p_last_ms, seq = p_last_seq, updated_at = now()
         WHERE name = p_lease;
    ELSE
        INSERT INTO health_events_progress (name, ms, seq)
        VALUES (p_lease, p_last_ms, p_last_seq)
        ON CONFLICT (name) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'health_events_apply: the applied position of "%" was just recorded by another apply', p_lease
                USING ERRCODE = 'HE002';
        END IF;
    END IF;
    IF p_refused_reason IS NOT NULL THEN
        INSERT INTO health_events_refused (name, ms, seq, reason)
        VALUES (p_lease, p_refused_ms, p_refused_seq, p_refused_reason)
        ON CONFLICT (name, ms, seq) DO UPDATE SET reason = EXCLUDED.reason;
        DELETE FROM health_events_refused
         WHERE name = p_lease AND ms < p_refused_ms - keep;
    END IF;
    IF n > 0 THEN
        RETURN QUERY SELECT * FROM health_events_apply_batch(
            p_game_ids, p_summaries, p_expected, p_to);
    END IF;
END
$$;

DO $$
DECLARE
    f text := 'health_events_apply(text, bigint, bigint, bigint, bigint, '
              'bigint, text[], text[], text[], text[], bigint, bigint, text)';
BEGIN
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                   f, current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
END
$$;
