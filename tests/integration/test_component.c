/*
 * Suite integration: health_events.so dlopen()ed and driven through its
 * ABI (init/start/stop/export/import) with a services table that hands
 * out real connections.
 */
#include "real_services.h"
#include "redis_pg.h"

#include <apphost/component.h>
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct plugin {
	void *dl;
	apphost_init_fn init;
	apphost_start_fn start;
	apphost_stop_fn stop;
	apphost_export_fn export_;
	apphost_import_fn import_;
} plugin;

/* dlsym for a function: POSIX guarantees the object-to-function cast. */
static void *fn(void *dl, const char *name)
{
	return dlsym(dl, name);
}
#define SYM(dl, type, name) ((type)(uintptr_t)fn((dl), (name)))

static plugin load(void)
{
	const char *path = getenv("HE_SO");
	cr_assert_not_null(path, "HE_SO (path of health_events.so) unset");
	plugin p = {.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)};
	cr_assert_not_null(p.dl, "dlopen: %s", dlerror());
	apphost_magic_fn magic = SYM(p.dl, apphost_magic_fn, APPHOST_SYM_MAGIC);
	cr_assert_not_null(magic);
	cr_assert_str_eq(magic()->name, "health_events");
	cr_assert_eq(magic()->abi_major, APPHOST_ABI_MAJOR);
	p.init = SYM(p.dl, apphost_init_fn, APPHOST_SYM_INIT);
	p.start = SYM(p.dl, apphost_start_fn, APPHOST_SYM_START);
	p.stop = SYM(p.dl, apphost_stop_fn, APPHOST_SYM_STOP);
	p.export_ = SYM(p.dl, apphost_export_fn, APPHOST_SYM_EXPORT);
	p.import_ = SYM(p.dl, apphost_import_fn, APPHOST_SYM_IMPORT);
	cr_assert(p.init && p.start && p.stop && p.export_ && p.import_);
	return p;
}

static real_services *rs;
static redisContext *redis;
static PGconn *pg;
static plugin he;
static th_keys K;

static void setup(void)
{
	rs_connect(&redis, &pg);
	rs = rs_new();
	he = load();
	th_keys_init(&K, "comp");
	rs_config_set(rs, "HEALTH_EVENTS_STREAM", K.stream);
	rs_config_set(rs, "HEALTH_EVENTS_LOBBY_STREAM", K.lobby);
	rs_config_set(rs, "HEALTH_EVENTS_DEAD_LETTER_STREAM", K.dead);
	rs_config_set(rs, "HEALTH_EVENTS_OFFSET_LABEL", K.prefix);
	rs_config_set(rs, "HEALTH_EVENTS_BLOCK_MS", "5000");
}

static void teardown(void)
{
	rs_disconnect(&redis, &pg);
	if (he.dl)
		dlclose(he.dl);
	rs_free(rs);
	memset(&he, 0, sizeof(he));
	rs = NULL;
}

TestSuite(component, .init = setup, .fini = teardown, .timeout = 60);

static char *game(const char *name)
{
	static char buf[8][160];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 160, "%s:%s", K.prefix, name);
	return b;
}

static void *start(void)
{
	void *st = NULL;
	cr_assert_eq(he.init(rs_services(rs), &st), 0, "init");
	cr_assert_eq(he.start(st), 0, "start");
	return st;
}

/* XADD one entry for game(name) and wait until it is processed. */
static void feed(const char *name, const char *type)
{
	char *id = th_xadd(redis, K.stream, "game_id", game(name), "event_type",
			   type, NULL);
	cr_assert(th_wait_offset(redis, K.offset_key, id, 10000),
		  "entry %s not processed", id);
	free(id);
}

Test(component, init_refuses_a_bad_number_naming_key_and_value)
{
	rs_config_set(rs, "HEALTH_EVENTS_BATCH", "12x");
	void *st = NULL;
	cr_assert_eq(he.init(rs_services(rs), &st), APPHOST_EINVAL);
	cr_assert_eq(rs_log_count(rs, APPHOST_LOG_ERROR,
				  "key=HEALTH_EVENTS_BATCH value=\"12x\""),
		     1);
}

Test(component, init_refuses_a_commit_mode_other_than_on_or_off)
{
	rs_config_set(rs, "HEALTH_EVENTS_SYNCHRONOUS_COMMIT", "local");
	void *st = NULL;
	cr_assert_eq(he.init(rs_services(rs), &st), APPHOST_EINVAL);
	cr_assert_eq(rs_log_count(rs, APPHOST_LOG_ERROR,
				  "key=HEALTH_EVENTS_SYNCHRONOUS_COMMIT "
				  "value=\"local\" error=\"want on or off\""),
		     1);
}

Test(component, processes_publishes_and_stops_promptly_while_blocked)
{
	th_insert_game(pg, game("a"), "running", 7);
	th_insert_game(pg, game("b"), "engine_unreachable", 2);
	th_xadd(redis, K.stream, "game_id", game("a"), "event_type",
		"container_oom", NULL);
	th_xadd(redis, K.stream, "game_id", game("b"), "event_type",
		"probe_recovered", NULL);
	th_xadd(redis, K.stream, "game_id", game("missing"), "event_type",
		"probe_failed", NULL);
	char *last =
	    th_xadd(redis, K.stream, "event_type", "container_oom", NULL);

	void *st = start();
	cr_assert(th_wait_offset(redis, K.offset_key, last, 10000),
		  "offset reached the last entry");
	char *row = th_sql_value(pg,
				 "SELECT status || '/' || engine_health FROM "
				 "runtime_records WHERE game_id = $1",
				 game("a"));
	cr_assert_str_eq(row, "engine_unreachable/oom");
	free(row);
	row = th_sql_value(pg,
			   "SELECT status || '/' || engine_health FROM "
			   "runtime_records WHERE game_id = $1",
			   game("b"));
	cr_assert_str_eq(row, "running/healthy");
	free(row);
	cr_assert_eq(th_xlen(redis, K.lobby), 2);
	cr_assert_eq(th_xlen(redis, K.dead), 1);
	redisReply *l = th_xrange(redis, K.lobby);
	char want[512];
	th_payload(want, sizeof(want), game("a"), "engine_unreachable", "oom",
		   7);
	cr_assert_str_eq(th_field(l->element[0], "payload"), want);
	freeReplyObject(l);

	/* idle in XREAD BLOCK 5000: stop must not wait it out */
	double t0 = th_now_ms();
	cr_assert_eq(he.stop(st), 0);
	double took = th_now_ms() - t0;
	cr_log_info("stop while blocked took %.1f ms", took);
	/* below the 2 s that one XREAD may block: the stop woke it */
	cr_assert_lt(took, 1000, "stop waited out XREAD BLOCK (%.0f ms)", took);
	cr_assert_eq(rs_leases_out(rs), 0, "every lease returned");
	free(last);
}

Test(component, a_restart_replays_nothing_and_publishes_one_extra_snapshot)
{
	th_insert_game(pg, game("r"), "running", 1);
	th_xadd(redis, K.stream, "game_id", game("r"), "event_type",
		"probe_failed", NULL);
	char *id = th_xadd(redis, K.stream, "game_id", game("r"), "event_type",
			   "probe_failed", NULL);
	void *st = start();
	cr_assert(th_wait_offset(redis, K.offset_key, id, 10000));
	cr_assert_eq(th_xlen(redis, K.lobby), 1,
		     "a repeated summary is suppressed");
	cr_assert_eq(he.stop(st), 0);
	free(id);

	st = start(); /* a restart: empty dedupe cache, saved offset */
	feed("r", "probe_failed");
	cr_assert_eq(th_xlen(redis, K.lobby), 2,
		     "processed entries are not published again; exactly "
		     "one extra snapshot after the restart");
	feed("r", "probe_failed");
	cr_assert_eq(th_xlen(redis, K.lobby), 2, "then suppressed again");
	cr_assert_eq(he.stop(st), 0);
}

Test(component, export_import_carries_the_dedupe_cache)
{
	th_insert_game(pg, game("h"), "running", 1);
	char *id = th_xadd(redis, K.stream, "game_id", game("h"), "event_type",
			   "probe_failed", NULL);
	void *old = start();
	cr_assert(th_wait_offset(redis, K.offset_key, id, 10000));
	void *buf = NULL;
	size_t len = 0;
	cr_assert_eq(he.export_(old, &buf, &len), 0);
	cr_assert_eq(he.stop(old), 0);

	void *st = NULL;
	cr_assert_eq(he.init(rs_services(rs), &st), 0);
	cr_assert_eq(he.import_(st, buf, len), 0);
	cr_assert_eq(he.import_(st, "garbage", 7), APPHOST_EINVAL);
	free(buf);
	cr_assert_eq(he.start(st), 0);
	free(id);
	feed("h", "probe_failed");
	cr_assert_eq(th_xlen(redis, K.lobby), 1,
		     "the imported cache suppresses a repeat");
	cr_assert_eq(he.stop(st), 0);
}
