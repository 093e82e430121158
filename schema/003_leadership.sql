-- health_events: one leader among any number of instances, by a lease in
-- this database (the store of record, one clock: now()), and fencing of
-- every batch by the lease's epoch.
--
-- One row per lease name (the consumer's HEALTH_EVENTS_OFFSET_LABEL:
-- instances sharing an offset share a leader). `epoch` is the fencing
-- token: it grows whenever the holder changes or a lease lapsed, and never
-- otherwise. `token` is random per consumer instance, so two processes
-- given the same HEALTH_EVENTS_INSTANCE_ID are still two holders.
--
-- Why the UNIQUE (name, epoch): it makes epoch a key column. An apply
-- takes FOR KEY SHARE on the lease row, which conflicts with an UPDATE
-- that changes a key column (a takeover) but not with one that changes
-- only expires_at (the holder's renewal). So a leader's renewals never
-- wait for its own batches, while a takeover waits until every apply of
-- the old epoch has committed or failed: once the new epoch exists, no
-- older apply can commit.
CREATE TABLE health_events_leader (
    name        text        PRIMARY KEY,
    epoch       bigint      NOT NULL CHECK (epoch > 0),
    holder      text        NOT NULL,
    token       text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT health_events_leader_epoch_key UNIQUE (name, epoch)
);

-- Acquire or renew the lease `p_name` for p_ms milliseconds.
--   the caller holds it, unexpired: renewed, same epoch;
--   lapsed (whoever held it) or absent: taken, epoch + 1 (at least
--     p_min_epoch: the highest fence the caller has seen elsewhere, so a
--     lease table restored from an old backup cannot hand out an epoch
--     that is already in use);
--   held by another, unexpired: not taken.
-- Returns one row: o_epoch > 0 when the caller holds the lease after the
-- call (0 otherwise), the holder, and the milliseconds its lease has left.
-- A takeover that would wait for a running apply of the old epoch gives up
-- after lock_timeout and reports "not taken": the caller polls again.
CREATE FUNCTION health_events_lease(p_name text, p_holder text,
                                    p_token text, p_ms integer,
                                    p_min_epoch bigint)
RETURNS TABLE (o_epoch bigint, o_holder text, o_ms_left integer)
LANGUAGE plpgsql
SET lock_timeout = '200ms'
AS $$
DECLARE
    l health_events_leader%ROWTYPE;
    e bigint;
BEGIN
    IF p_ms IS NULL OR p_ms < 100 OR p_ms > 3600000 THEN
        RAISE EXCEPTION 'health_events_lease: lease of % ms is outside 100..3600000', p_ms
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO l FROM health_events_leader WHERE name = p_name;
    IF NOT FOUND THEN
        INSERT INTO health_events_leader (name, epoch, holder, token, expires_at)
        VALUES (p_name, greatest(1, p_min_epoch), p_holder, p_token,
                now() + p_ms * interval '1 millisecond')
        ON CONFLICT (name) DO NOTHING
        RETURNING epoch INTO e;
        IF e IS NOT NULL THEN
            RETURN QUERY SELECT e, p_holder, p_ms;
            RETURN;
        END IF;
        SELECT * INTO l FROM health_events_leader WHERE name = p_name;
    END IF;
    IF l.token = p_token AND l.expires_at > now() THEN
        UPDATE health_events_leader
           SET expires_at = now() + p_ms * interval '1 millisecond'
         WHERE name = p_name AND token = p_token AND epoch = l.epoch
           AND expires_at > now()
        RETURNING epoch INTO e;
    ELSIF l.expires_at <= now() THEN
        BEGIN
            UPDATE health_events_leader
               SET epoch = greatest(l.epoch + 1, p_min_epoch),
                   holder = p_holder, token = p_token,
                   expires_at = now() + p_ms * interval '1 millisecond',
                   acquired_at = now()
             WHERE name = p_name AND epoch = l.epoch AND expires_at <= now()
            RETURNING epoch INTO e;
        EXCEPTION WHEN lock_not_available THEN
            e := NULL;
        END;
    END IF;
    IF e IS NOT NULL THEN
        RETURN QUERY SELECT e, p_holder, p_ms;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT 0::bigint, r.holder,
               greatest(0, ceil(extract(epoch FROM r.expires_at - now()) * 1000))::integer
          FROM health_events_leader r WHERE r.name = p_name;
END
$$;

-- A holder stopping gracefully lets its lease lapse now, so a standby takes
-- over at its next poll instead of waiting out the lease. Returns whether
-- the caller still held it.
CREATE FUNCTION health_events_lease_release(p_name text, p_token text,
                                            p_epoch bigint)
RETURNS boolean
LANGUAGE sql
AS $$
    WITH r AS (
        UPDATE health_events_leader SET expires_at = now()
         WHERE name = p_name AND token = p_token AND epoch = p_epoch
           AND expires_at > now()
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM r);
$$;

-- The batch body of schema/002 stays as it was, under a name of its own;
-- the one entry point is the fenced health_events_apply below.
ALTER FUNCTION health_events_apply(text[], text[], text[], text[])
    RENAME TO health_events_apply_batch;

-- Apply one batch for the holder of epoch p_epoch of lease p_lease.
-- Refused with SQLSTATE HE001 (nothing written) when that epoch is not the
-- lease's current one; the lease row stays KEY SHARE locked until commit,
-- so a takeover cannot slip in between the check and the commit.
-- The arrays must be one-dimensional, of one length, without NULL game ids
-- or summaries (22023 otherwise): a caller's bug is refused, not guessed at.
CREATE FUNCTION health_events_apply(
    p_lease text,
    p_epoch bigint,
    p_game_ids text[],
    p_summaries text[],
    p_expected text[],
    p_to text[])
RETURNS TABLE (o_ord integer, o_outcome text, o_status text,
               o_engine_health text, o_current_turn integer)
LANGUAGE plpgsql
AS $$
DECLARE
    n integer := coalesce(cardinality(p_game_ids), 0);
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
    PERFORM 1 FROM health_events_leader
      WHERE name = p_lease AND epoch = p_epoch
      FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'health_events_apply: epoch % is not the current epoch of lease "%"', p_epoch, p_lease
            USING ERRCODE = 'HE001';
    END IF;
    RETURN QUERY SELECT * FROM health_events_apply_batch(
        p_game_ids, p_summaries, p_expected, p_to);
END
$$;

-- Pin the search path (a caller's temporary table must not stand in for
-- runtime_records: pg_temp last) and keep the functions from PUBLIC: only
-- the owner (the migrating role) and roles granted EXECUTE may call them.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'health_events_lease(text, text, text, integer, bigint)',
        'health_events_lease_release(text, text, bigint)',
        'health_events_apply_batch(text[], text[], text[], text[])',
        'health_events_apply(text, bigint, text[], text[], text[], text[])']
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
