/*
 * Each malformed form of DESIGN §6 step 1 is dead-lettered with its
 * reason and the offset moves on. XADD cannot make an entry with an odd
 * field count, so that form goes through the decision core (he_core) and
 * the real Redis commit (stream_redis.c) with a hand-made entry instead
 * of through apphost.
 */
#include "faults.h"

#include "core.h"
#include "memory_ports.h"
#include "real_services.h"
#include "stream_redis.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(faults_malformed, .init = fx_setup, .fini = fx_teardown,
	  .timeout = 120);

/* XADD F.keys.stream * with binary-safe items; returns the id (static). */
static const char *xadd_raw(int nitems, const char **items, const size_t *lens)
{
	static char id[16][32];
	static int k;
	const char *argv[16] = {"XADD", F.keys.stream, "*"};
	size_t argvlen[16] = {4, strlen(F.keys.stream), 1};
	for (int i = 0; i < nitems; i++) {
		argv[3 + i] = items[i];
		argvlen[3 + i] = lens ? lens[i] : strlen(items[i]);
	}
	redisReply *r = redisCommandArgv(F.redis, 3 + nitems, argv, argvlen);
	cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD: %s",
		  r && r->str ? r->str : F.redis->errstr);
	char *out = id[k++ % 16];
	snprintf(out, 32, "%s", r->str);
	freeReplyObject(r);
	return out;
}

/* A value of len bytes of 'v', too large for a field; free() it. */
static char *big_value(size_t len)
{
	char *v = malloc(len);
	cr_assert_not_null(v);
	memset(v, 'v', len);
	return v;
}

Test(faults_malformed, each_form_is_dead_lettered_and_the_offset_moves_on)
{
	mgame model[1];
	fx_insert_games(1, false, model);
	const char *g = fx_game(0);
	size_t mib = 1 << 20;
	char *big = big_value(mib);

	static const char *const want[] = {
	    "missing game_id",
	    "missing event_type",
	    "unknown event_type",
	    "field details longer than 65536",
	    "game_id is not valid UTF-8",
	    "empty game_id",
	    "game_id longer than 256",
	    "duplicate field game_id",
	    "missing event_type",
	};
	enum { FORMS = sizeof(want) / sizeof(want[0]) };
	const char *ids[FORMS];
	pid_t pid = fx_spawn(NULL);
	ids[0] =
	    xadd_raw(2, (const char *[]){"event_type", "container_oom"}, NULL);
	ids[1] = xadd_raw(2, (const char *[]){"game_id", g}, NULL);
	ids[2] = xadd_raw(
	    4, (const char *[]){"game_id", g, "event_type", "container_melted"},
	    NULL);
	ids[3] = xadd_raw(6,
			  (const char *[]){"game_id", g, "event_type",
					   "probe_failed", "details", big},
			  (size_t[]){7, strlen(g), 10, 12, 7, mib});
	ids[4] = xadd_raw(4,
			  (const char *[]){"game_id", "g\xff\xfe\xc3(",
					   "event_type", "container_oom"},
			  (size_t[]){7, 5, 10, 13});
	ids[5] = xadd_raw(
	    4, (const char *[]){"game_id", "", "event_type", "container_oom"},
	    NULL);
	ids[6] = xadd_raw(
	    4, (const char *[]){"game_id", big, "event_type", "probe_failed"},
	    (size_t[]){7, mib, 10, 12});
	ids[7] = xadd_raw(6,
			  (const char *[]){"game_id", g, "game_id", "x",
					   "event_type", "probe_failed"},
			  NULL);
	/* Fields of the consumer's names: kept, renamed, never doubled. */
	ids[8] = xadd_raw(6,
			  (const char *[]){"game_id", g, "reason", "spoofed",
					   "source_id", "0-1"},
			  NULL);
	fx_entry good = {0, 3, ""};
	fx_write_entries(&good, 1);
	free(big);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, good.id, 20000),
		  "the offset moves past every malformed entry (log: %s)",
		  F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);

	redisReply *d = th_xrange(F.redis, F.keys.dead);
	cr_assert_eq(d->elements, FORMS, "every malformed entry dead-lettered");
	for (size_t i = 0; i < FORMS; i++) {
		const char *r = th_field(d->element[i], "reason");
		cr_expect(r && strstr(r, want[i]), "reason %zu: %s, want %s", i,
			  r ? r : "(none)", want[i]);
		const char *src = th_field(d->element[i], "source_id");
		cr_expect(src && strcmp(src, ids[i]) == 0, "source_id %zu", i);
	}
	/* An oversized entry travels cut to its first KiB, with its sizes. */
	const char *details = th_field(d->element[3], "details");
	cr_expect(details && strlen(details) > 900 && strlen(details) < 1024,
		  "1 MiB value cut to the head: %zu bytes",
		  details ? strlen(details) : 0);
	char bytes[32];
	snprintf(bytes, sizeof(bytes), "%zu",
		 7 + strlen(g) + 10 + 12 + 7 + mib);
	cr_expect_str_eq(th_field(d->element[3], "entry_bytes"), bytes);
	cr_expect_str_eq(th_field(d->element[3], "entry_fields"), "3");
	cr_expect_null(th_field(d->element[2], "entry_bytes"),
		       "a small entry is kept whole");
	const redisReply *sp = d->element[8]->element[1];
	size_t reasons = 0, sources = 0;
	for (size_t i = 0; i + 1 < sp->elements; i += 2) {
		reasons += strcmp(sp->element[i]->str, "reason") == 0;
		sources += strcmp(sp->element[i]->str, "source_id") == 0;
	}
	cr_expect_eq(reasons, 1, "one reason field, the consumer's");
	cr_expect_eq(sources, 1, "one source_id field, the consumer's");
	cr_expect_str_eq(th_field(d->element[8], "orig_reason"), "spoofed");
	cr_expect_str_eq(th_field(d->element[8], "orig_source_id"), "0-1");
	freeReplyObject(d);
	cr_expect_eq(ap_log_count(F.log, "warn", "dead", NULL), FORMS,
		     "one warning per dead letter (log: %s)", F.log);

	(void)model_apply(&model[0], good.ev);
	fx_expect_rows(model, 1);
}

Test(faults_malformed, odd_field_count_through_core_and_real_commit)
{
	rs_require_servers();
	real_services *rs = rs_new();
	he_config cfg = {.block_ms = 100, .batch = 16};
	snprintf(cfg.stream, sizeof(cfg.stream), "%s", F.keys.stream);
	snprintf(cfg.lobby_stream, sizeof(cfg.lobby_stream), "%s",
		 F.keys.lobby);
	snprintf(cfg.dead_stream, sizeof(cfg.dead_stream), "%s", F.keys.dead);
	snprintf(cfg.offset_key, sizeof(cfg.offset_key), "%s",
		 F.keys.offset_key);
	snprintf(cfg.fence_key, sizeof(cfg.fence_key), "%s:fence",
		 F.keys.offset_key);

	/* A hand-made entry with 3 items, then a good one. */
	static const char *const odd[] = {"game_id", "g1", "event_type"};
	static const size_t odd_lens[] = {7, 2, 10};
	static const char *const ok[] = {"game_id", "g1", "event_type",
					 "container_oom"};
	static const size_t ok_lens[] = {7, 2, 10, 13};
	he_stream_entry e[2] = {{"1-1", 3, odd, odd_lens},
				{"1-2", 4, ok, ok_lens}};

	mem_store *store = mem_store_new();
	mem_store_put(store, "g1", "running", "", 4);
	he_record_store sp = mem_store_port(store);
	he_core *core;
	cr_assert_eq(he_core_new(NULL, &core), 0);
	he_outbox box = {0};
	he_entry_report rep[2];
	cr_assert_eq(he_core_process(core, e, 2, &sp, &box, rep), 0);
	cr_expect_eq(rep[0].outcome, HE_ENTRY_DEAD_LETTERED);
	cr_expect_eq(rep[1].outcome, HE_ENTRY_TRANSITIONED);

	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	he_stream_redis_set_epoch(&s, 1);
	he_stream_port port = he_stream_redis_port(&s);
	cr_assert_eq(port.commit(port.ctx, &box), 0, "%s", s.err);
	he_stream_redis_close(&s);

	char off[64];
	cr_expect_str_eq(fx_offset(off, sizeof(off)), "1-2",
			 "the offset moves past the odd entry");
	redisReply *d = th_xrange(F.redis, F.keys.dead);
	cr_assert_eq(d->elements, 1);
	const char *r = th_field(d->element[0], "reason");
	cr_expect(r && strstr(r, "odd number of field items (3)"), "reason %s",
		  r ? r : "(none)");
	cr_expect_str_eq(th_field(d->element[0], "source_id"), "1-1");
	cr_expect_str_eq(th_field(d->element[0], "game_id"), "g1");
	/* the dangling field name keeps an empty value */
	const char *et = th_field(d->element[0], "event_type");
	cr_expect(et && et[0] == '\0', "dangling field padded");
	freeReplyObject(d);
	redisReply *l = th_xrange(F.redis, F.keys.lobby);
	cr_expect_eq(l->elements, 1, "the good entry's snapshot");
	freeReplyObject(l);

	he_outbox_free(&box);
	he_core_free(core);
	mem_store_free(store);
	rs_free(rs);
}

/* VmHWM (peak RSS) of a running process, in bytes; 0 if unreadable. */
static size_t peak_rss(pid_t pid)
{
	char path[64], line[256];
	size_t kib = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %zu kB", &kib) == 1)
			break;
	fclose(f);
	return kib * 1024;
}

/*
 * Writes a good entry (game 0, event 3) behind what the test put in the
 * stream, runs apphost until its offset passes that entry ("the offset
 * moves past <what>"), stops it, and returns the dead letters. With hwm,
 * apphost's peak RSS is read before it stops.
 */
static redisReply *run_past(fx_entry *good, int timeout_ms, const char *what,
			    size_t *hwm)
{
	*good = (fx_entry){0, 3, ""};
	fx_write_entries(good, 1);

	pid_t pid = fx_spawn(NULL);
	cr_assert(
	    th_wait_offset(F.redis, F.keys.offset_key, good->id, timeout_ms),
	    "the offset moves past %s (log: %s)", what, F.log);
	if (hwm != NULL)
		*hwm = peak_rss(pid);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	return th_xrange(F.redis, F.keys.dead);
}

/*
 * A backlog of 48 entries of 2 MiB and 8 of 50,000 fields: each is
 * dead-lettered cut down, the offset moves past them, and apphost's peak
 * RSS stays within 96 MiB (XREAD COUNT 256 of them would hold it all).
 */
Test(faults_malformed, large_entries_keep_memory_bounded)
{
	enum { BIG = 48, WIDE = 8, FIELDS = 50000 };
	mgame model[1];
	fx_insert_games(1, false, model);
	const char *g = fx_game(0);
	size_t vlen = 2 << 20;
	char *big = big_value(vlen);
	const char *argv[3 + 2 * FIELDS + 4] = {"XADD", F.keys.stream, "*"};
	size_t lens[3 + 2 * FIELDS + 4] = {4, strlen(F.keys.stream), 1};
	const char *head[] = {"game_id", g, "event_type", "probe_failed"};
	for (int k = 0; k < 4; k++) {
		argv[3 + k] = head[k];
		lens[3 + k] = strlen(head[k]);
	}
	argv[7] = "details";
	lens[7] = 7;
	argv[8] = big;
	lens[8] = vlen;
	for (int i = 0; i < BIG; i++)
		cr_assert_eq(redisAppendCommandArgv(F.redis, 9, argv, lens),
			     REDIS_OK);
	for (int i = 0; i < 2 * FIELDS; i++) {
		argv[7 + i] = i % 2 ? "value" : "field";
		lens[7 + i] = 5;
	}
	for (int i = 0; i < WIDE; i++)
		cr_assert_eq(
		    redisAppendCommandArgv(F.redis, 7 + 2 * FIELDS, argv, lens),
		    REDIS_OK);
	for (int i = 0; i < BIG + WIDE; i++) {
		redisReply *r;
		cr_assert_eq(redisGetReply(F.redis, (void **)&r), REDIS_OK);
		cr_assert_eq(r->type, REDIS_REPLY_STRING, "XADD: %s",
			     r->type == REDIS_REPLY_ERROR ? r->str : "?");
		freeReplyObject(r);
	}
	free(big);
	fx_entry good;
	size_t hwm;
	redisReply *d = run_past(&good, 60000, "the large entries", &hwm);
	cr_assert_eq(d->elements, BIG + WIDE, "each dead-lettered");
	for (size_t i = 0; i < d->elements; i++) {
		const char *r = th_field(d->element[i], "reason");
		cr_expect(r && strstr(r, i < BIG ? "field details longer"
						 : "entry has 50002 fields"),
			  "reason %zu: %s", i, r ? r : "(none)");
		cr_expect_not_null(th_field(d->element[i], "entry_bytes"));
		cr_expect_lt(d->element[i]->element[1]->elements, 400,
			     "dead letter %zu cut down", i);
	}
	freeReplyObject(d);
	freeReplyObject(
	    th_cmd(F.redis, "DEL", F.keys.stream, F.keys.dead, NULL));
	(void)model_apply(&model[0], good.ev);
	fx_expect_rows(model, 1);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory */
	cr_expect_leq(hwm, 96u << 20, "apphost peak RSS %zu MiB", hwm >> 20);
#else
	(void)hwm;
#endif
}

/*
 * 5,000 empty fields: over the field cap, and a whole copy would not even
 * fit the commit script's unpack (about 8,000 values): the dead letter is
 * cut to its first items and the offset moves on.
 */
Test(faults_malformed, an_entry_of_empty_fields_is_cut_by_count)
{
	enum { FIELDS = 5000 };
	mgame model[1];
	fx_insert_games(1, false, model);
	static const char *argv[3 + 2 * FIELDS] = {"XADD", F.keys.stream, "*"};
	static size_t lens[3 + 2 * FIELDS] = {4, 0, 1};
	lens[1] = strlen(F.keys.stream);
	for (int i = 3; i < 3 + 2 * FIELDS; i++) {
		argv[i] = "";
		lens[i] = 0;
	}
	redisReply *r = redisCommandArgv(F.redis, 3 + 2 * FIELDS, argv, lens);
	cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD");
	freeReplyObject(r);
	fx_entry good;
	redisReply *d = run_past(&good, 20000, "it", NULL);
	cr_assert_eq(d->elements, 1);
	cr_expect_str_eq(th_field(d->element[0], "entry_fields"), "5000");
	cr_expect_str_eq(th_field(d->element[0], "reason"),
			 "entry has 5000 fields, more than 256");
	cr_expect_leq(d->element[0]->element[1]->elements, 80);
	freeReplyObject(d);
}
