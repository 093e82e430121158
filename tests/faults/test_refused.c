/*
 * The lobby stream refuses XADD (its key holds a string): the offset
 * stays, retries back off (capped), the error is logged once per change
 * of state, and work resumes when the key is fixed. And a saved offset
 * older than the stream's first entry (XTRIM): the gap is logged.
 */
#include "faults.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(faults_refused, .init = fx_setup, .fini = fx_teardown,
	  .timeout = 120);

/* Commit scripts (EVALSHA) the server has run (INFO commandstats). */
static long commit_calls(void)
{
	redisReply *r = th_cmd(F.redis, "INFO", "commandstats", NULL);
	const char *p = r->str ? strstr(r->str, "cmdstat_evalsha:calls=") : NULL;
	long n = p ? atol(p + strlen("cmdstat_evalsha:calls=")) : 0;
	freeReplyObject(r);
	return n;
}

Test(faults_refused, lobby_xadd_refused_backs_off_and_resumes)
{
	mgame model[4];
	fx_insert_games(4, false, model);
	fx_entry e[4] = {{0, 3, ""}, {1, 2, ""}, {2, 5, ""}, {3, 6, ""}};
	pid_t pid = fx_spawn(NULL);
	fx_write_entries(e, 1);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[0].id, 20000),
		  "consumer running (log: %s)", F.log);

	freeReplyObject(th_cmd(F.redis, "DEL", F.keys.lobby, NULL));
	freeReplyObject(
	    th_cmd(F.redis, "SET", F.keys.lobby, "not a stream", NULL));
	long x0 = commit_calls();
	fx_write_entries(e + 1, 3);
	usleep(3500000);
	long x1 = commit_calls();
	usleep(3000000);
	long x2 = commit_calls();
	char off[64];
	cr_assert_str_eq(fx_offset(off, sizeof(off)), e[0].id,
			 "the offset stays while XADD is refused");
	size_t failing =
	    ap_log_count(F.log, "dependency failing", "WRONGTYPE", NULL);
	cr_log_info("commit attempts: %ld in the first 3.5 s, %ld in the next "
		    "3 s; %zu error lines",
		    x1 - x0, x2 - x1, failing);
	/* 50 ms doubling to 1 s: ~6 tries in 3.5 s, ~3 a second later. */
	cr_expect(x1 - x0 >= 2 && x1 - x0 <= 20,
		  "retries back off: %ld commits in 3.5 s", x1 - x0);
	cr_expect(x2 - x1 >= 2 && x2 - x1 <= 8,
		  "the backoff is capped: %ld commits in the next 3 s", x2 - x1);
	cr_expect_eq(failing, 1,
		     "one error line for the whole outage, not "
		     "one per retry (log: %s)",
		     F.log);

	double t0 = th_now_ms();
	freeReplyObject(th_cmd(F.redis, "DEL", F.keys.lobby, NULL));
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[3].id, 5000),
		  "work resumes once the key is fixed (log: %s)", F.log);
	cr_log_info("resumed %.0f ms after DEL", th_now_ms() - t0);
	cr_expect_eq(ap_log_count(F.log, "dependency recovered", "redis", NULL),
		     1);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	for (int i = 0; i < 4; i++)
		(void)model_apply(&model[e[i].game], e[i].ev);
	fx_expect_rows(model, 4);
	/* Every snapshot of the refused batch arrives once it is fixed. */
	redisReply *l = th_xrange(F.redis, F.keys.lobby);
	cr_expect_eq(l->elements, 3, "the refused batch's 3 snapshots");
	freeReplyObject(l);
}

Test(faults_refused, saved_offset_older_than_first_entry_is_logged)
{
	mgame model[2];
	fx_insert_games(2, false, model);
	fx_entry e[6] = {{0, 6, ""}, {1, 6, ""}, {0, 5, ""},
			 {1, 5, ""}, {0, 3, ""}, {1, 3, ""}};
	pid_t pid = fx_spawn(NULL);
	fx_write_entries(e, 2);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[1].id, 20000),
		  "consumer running (log: %s)", F.log);
	cr_assert_eq(fx_terminate(pid, 15000, NULL), 0);
	cr_expect_eq(ap_log_count(F.log, "saved offset is older", NULL), 0,
		     "no gap before the trim");

	/* While it is down, 4 more entries arrive and 2 are trimmed unread. */
	fx_write_entries(e + 2, 4);
	freeReplyObject(
	    th_cmd(F.redis, "XTRIM", F.keys.stream, "MAXLEN", "2", NULL));
	pid = fx_spawn(NULL);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[5].id, 20000),
		  "it reads what is left (log: %s)", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	char first[64];
	snprintf(first, sizeof(first), "first_entry=%s", e[4].id);
	char saved[64];
	snprintf(saved, sizeof(saved), "offset=%s", e[1].id);
	cr_expect_eq(ap_log_count(F.log,
				  "saved offset is older than the stream's "
				  "first entry",
				  saved, first, NULL),
		     1, "the gap is logged once, with both ids (log: %s)",
		     F.log);
	/* The trimmed entries never applied; the rest did. */
	(void)model_apply(&model[0], e[0].ev);
	(void)model_apply(&model[1], e[1].ev);
	(void)model_apply(&model[0], e[4].ev);
	(void)model_apply(&model[1], e[5].ev);
	fx_expect_rows(model, 2);
}
