-- bench/apply_equivalence.sql -- health_events_apply against 002's
-- sequential definition on random batches (0..59 elements over 8 games, 6
-- of them with rows in random statuses, some NULL ids): same rows returned,
-- same table afterwards. Everything runs in one transaction that is rolled
-- back. The reference, pg_temp.apply_002, is schema/002's function
-- renamed; bench/run creates it in the same session before this file, so
-- every bench/run (CI's --smoke too) checks the function it measures.
BEGIN;
DO $$
DECLARE
    n int; r int; ids text[]; sums text[]; ex text[]; tos text[];
    a text; b text; ta text; tb text;
    types text[][] := ARRAY[
        ['healthy', NULL, NULL],
        ['healthy', 'engine_unreachable', 'running'],
        ['exited', 'running', 'engine_unreachable'],
        ['oom', 'running', 'engine_unreachable'],
        ['probe_failed', NULL, NULL],
        ['disappeared', 'running', 'engine_unreachable']];
    sts text[] := ARRAY['running', 'engine_unreachable', 'finished',
                        'stopped', 'starting'];
BEGIN
    FOR it IN 1 .. 500 LOOP
        DELETE FROM runtime_records WHERE game_id LIKE 'equiv-%';
        INSERT INTO runtime_records (game_id, status, current_turn)
            SELECT 'equiv-' || i, sts[1 + floor(random() * 5)::int], i
              FROM generate_series(1, 6) AS i;
        n := floor(random() * 60)::int;
        ids := '{}'; sums := '{}'; ex := '{}'; tos := '{}';
        FOR i IN 1 .. n LOOP
            r := 1 + floor(random() * 6)::int;
            ids := ids || CASE WHEN random() < 0.05 THEN NULL
                          ELSE 'equiv-' || (1 + floor(random() * 8)::int) END;
            sums := sums || types[r][1];
            ex := ex || types[r][2];
            tos := tos || types[r][3];
        END LOOP;
        BEGIN -- run 002, remember, undo
            SELECT string_agg(x::text, ';' ORDER BY x.o_ord) INTO a
              FROM pg_temp.apply_002(ids, sums, ex, tos) AS x;
            SELECT string_agg(concat_ws(',', game_id, status, engine_health,
                                        current_turn), ';' ORDER BY game_id)
              INTO ta FROM runtime_records WHERE game_id LIKE 'equiv-%';
            RAISE EXCEPTION 'undo';
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
        SELECT string_agg(x::text, ';' ORDER BY x.o_ord) INTO b
          FROM health_events_apply(ids, sums, ex, tos) AS x;
        SELECT string_agg(concat_ws(',', game_id, status, engine_health,
                                    current_turn), ';' ORDER BY game_id)
          INTO tb FROM runtime_records WHERE game_id LIKE 'equiv-%';
        IF a IS DISTINCT FROM b OR ta IS DISTINCT FROM tb THEN
            RAISE EXCEPTION 'batch % differs: % / % -- % / %', it, a, b, ta, tb;
        END IF;
    END LOOP;
    RAISE NOTICE 'health_events_apply agrees with 002 on 500 random batches';
END
$$;
ROLLBACK;
