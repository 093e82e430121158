-- 001_runtime_records: one row per running game, owned by Game Master.
-- health_events updates status (CAS) and engine_health; see DESIGN.md §5.
-- Every column beyond game_id and status has a default, so
-- INSERT (game_id, status) is a complete row.

CREATE TABLE runtime_records (
  game_id       text        PRIMARY KEY,
  status        text        NOT NULL
    CONSTRAINT runtime_records_status_check CHECK (status IN (
      'starting',
      'running',
      'generation_in_progress',
      'generation_failed',
      'stopped',
      'finished',
      'engine_unreachable'
    )),
  engine_health text        NOT NULL DEFAULT '',
  current_turn  integer     NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE runtime_records IS
  'one row per running game; health_events writes status and engine_health';
COMMENT ON COLUMN runtime_records.engine_health IS
  'last engine health summary (healthy, exited, oom, disappeared, unhealthy, probe_failed)';
