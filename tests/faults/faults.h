/*
 * faults.h -- what the faults suite's tests share: a fixture with this
 * test's keys and connections, apphost as a subprocess, the server fault
 * switches of scripts/services, and a model of DESIGN §4/§6 computed
 * from the stream the test wrote.
 *
 * Every test runs in its own Criterion subprocess, one at a time (the
 * suite runs with --jobs 1 and alone: its faults hit the whole server).
 */
#ifndef TEST_FAULTS_H
#define TEST_FAULTS_H

#include "apphost_proc.h"
#include "redis_pg.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FX_MAX_CHILDREN 32

/* This test's keys, rows and connections (set up by fx_setup). */
typedef struct fx {
	redisContext *redis;
	PGconn *pg;
	th_keys keys;  /* streams, offset key; game ids start with prefix */
	char log[256]; /* apphost's stderr, appended */
	pid_t children[FX_MAX_CHILDREN]; /* spawned, 0 once reaped */
	int nchildren;
} fx;
extern fx F;

/* Criterion .init/.fini: skip (or fail under CI) without servers; fini
 * also brings back any server a test took down. */
void fx_setup(void);
void fx_teardown(void);
/* Reconnect F.redis / F.pg after a fault cut them. */
void fx_reconnect(void);

/*
 * Start apphost with health_events.so on this test's keys, log level
 * debug, stderr appended to F.log. `env` is NULL or a NULL-terminated
 * list of extra "KEY=VALUE" settings. Returns the pid.
 */
pid_t fx_spawn(const char *const *env);
/*
 * SIGTERM and wait up to wait_ms: returns the exit code (128+signal when
 * killed) and sets *elapsed_ms (may be NULL); -1 when it did not exit in
 * time (it is then SIGKILLed).
 */
int fx_terminate(pid_t pid, int wait_ms, double *elapsed_ms);
/* SIGKILL and reap. */
void fx_kill9(pid_t pid);

/* scripts/services CMD (stop-redis, restart-postgres, ...); exit code. */
int fx_services(const char *cmd);

/* GET the offset into buf ("" when unset); returns buf. */
char *fx_offset(char *buf, size_t cap);
/* Compare stream ids "ms-seq": <0, 0, >0. "" sorts first. */
int fx_id_cmp(const char *a, const char *b);
/* Poll until the offset is past `than` (or equals `want` when non-NULL);
 * returns the ms waited, or -1 after timeout_ms. */
double fx_wait_offset_past(const char *than, int timeout_ms);

/* ---- the model -------------------------------------------------------- */

/* A game's row as the model (or the database) has it. */
typedef struct mgame {
	char status[32];
	char health[32];
	int turn;
	char last_pub[32]; /* summary of the last snapshot; "" none */
} mgame;


/* Game id i of this test: "<prefix>:g0042". Static buffer rotation. */
const char *fx_game(int i);
/*
 * Insert n games; game i starts as model_initial(i). With `finished`
 * false no game starts finished (their dedupe entries are dropped, D4).
 */
void fx_insert_games(int n, bool finished, mgame *model);
/*
 * Apply one event of type ev to g (DESIGN §6 steps 2-3). Returns true
 * when this process would publish a snapshot for it (D4: status changed
 * or summary differs from the last published one; finished forgets).
 */
bool model_apply(mgame *g, int ev);

/* One written entry: game index, event type, id. */
typedef struct fx_entry {
	int game, ev;
	char id[32];
} fx_entry;
/* XADD entries[0..n) (game and ev set) to F.keys.stream, pipelined; fills id.
 */
void fx_write_entries(fx_entry *e, size_t n);

/* Assert every row equals model[0..n). */
void fx_expect_rows(const mgame *model, int n);
/* Assert the last lobby snapshot of each game equals its row. */
void fx_expect_last_snapshots(const mgame *model, int n);
/*
 * Assert the lobby stream is exactly what one process applying e[0..n)
 * to `initial` publishes (no restart), allowing at-least-once repeats: a
 * source_id seen again must carry the same payload.
 */
void fx_expect_lobby_sequence(const mgame *initial, int ngames,
			      const fx_entry *e, size_t n);

#endif
