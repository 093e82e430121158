/* faults.c -- see faults.h. */
#include "faults.h"

#include "real_services.h"

#include "he_stream_id.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

fx F;

void fx_setup(void)
{
	memset(&F, 0, sizeof(F));
	rs_connect(&F.redis, &F.pg);
	th_keys_init(&F.keys, "faults");
	snprintf(F.log, sizeof(F.log), "/tmp/apphost-faults-%d.log",
		 (int)getpid());
	unlink(F.log);
}

void fx_teardown(void)
{
	/* A failed assertion must leave no apphost and no server down. */
	for (int i = 0; i < F.nchildren; i++)
		if (F.children[i] > 0)
			fx_kill9(F.children[i]);
	if (F.keys.prefix[0]) {
		(void)fx_services("start-redis");
		(void)fx_services("thaw-postgres"); /* harmless if not frozen */
		(void)fx_services("start-postgres");
	}
	rs_disconnect(&F.redis, &F.pg);
}

void fx_reconnect(void)
{
	rs_disconnect(&F.redis, &F.pg);
	rs_connect(&F.redis, &F.pg);
}

pid_t fx_spawn(const char *const *env)
{
	const char *all[16] = {"HEALTH_EVENTS_BLOCK_MS=500",
			       "APPHOST_LOG_LEVEL=debug"};
	size_t n = 2;

	for (size_t i = 0; env && env[i]; i++) {
		cr_assert_lt(n, 15, "too many settings");
		all[n++] = env[i];
	}
	cr_assert_lt(F.nchildren, FX_MAX_CHILDREN, "too many spawns");
	pid_t pid = ap_spawn_he(&F.keys, F.log, all);
	F.children[F.nchildren++] = pid;
	return pid;
}

/* pid is reaped: fx_teardown need not kill it. */
static void forget(pid_t pid)
{
	for (int i = 0; i < F.nchildren; i++)
		if (F.children[i] == pid)
			F.children[i] = 0;
}

int fx_terminate(pid_t pid, int wait_ms, double *elapsed_ms)
{
	int rc = ap_terminate_within(pid, wait_ms, elapsed_ms);

	forget(pid);
	return rc;
}

void fx_kill9(pid_t pid)
{
	ap_kill9(pid);
	forget(pid);
}

int fx_services(const char *cmd)
{
	const char *svc = getenv("APPHOST_SERVICES");
	cr_assert_not_null(svc, "APPHOST_SERVICES must be set by meson");
	char line[1024];
	snprintf(line, sizeof(line), "'%s' %s >>'%s' 2>&1", svc, cmd, F.log);
	int st = system(line);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *fx_offset(char *buf, size_t cap)
{
	redisReply *r = redisCommand(F.redis, "GET %s", F.keys.offset_key);
	cr_assert_not_null(r, "GET offset: %s", F.redis->errstr);
	snprintf(buf, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
	freeReplyObject(r);
	return buf;
}

int fx_id_cmp(const char *a, const char *b)
{
	/* "" (nothing saved) sorts first; ids compare as the consumer's. */
	he_stream_id x, y;
	if (!*a || !*b)
		return (*a != 0) - (*b != 0);
	cr_assert_eq(he_stream_id_parse(a, &x), 0, "bad id %s", a);
	cr_assert_eq(he_stream_id_parse(b, &y), 0, "bad id %s", b);
	return he_stream_id_cmp(x, y);
}

double fx_wait_offset_past(const char *than, int timeout_ms)
{
	double t0 = th_now_ms();
	char cur[64];
	do {
		if (fx_id_cmp(fx_offset(cur, sizeof(cur)), than) > 0)
			return th_now_ms() - t0;
		usleep(2000);
	} while (th_now_ms() - t0 < timeout_ms);
	return -1;
}

/* ---- model -------------------------------------------------------------- */

const char *fx_game(int i)
{
	static char buf[8][160];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 160, "%s:g%04d", F.keys.prefix, i);
	return b;
}

static const char *initial_status(int i, bool finished)
{
	static const char *const cycle[10] = {"running",
					      "running",
					      "running",
					      "running",
					      "engine_unreachable",
					      "engine_unreachable",
					      "engine_unreachable",
					      "starting",
					      "stopped",
					      "finished"};
	const char *s = cycle[i % 10];
	return !finished && strcmp(s, "finished") == 0 ? "generation_failed"
						       : s;
}

void fx_insert_games(int n, bool finished, mgame *model)
{
	char count[16], fin[8];
	snprintf(count, sizeof(count), "%d", n);
	snprintf(fin, sizeof(fin), "%s", finished ? "true" : "false");
	th_sql(F.pg,
	       "INSERT INTO runtime_records (game_id, status, current_turn) "
	       "SELECT $1 || ':g' || lpad(i::text, 4, '0'), "
	       "CASE WHEN i % 10 = 9 AND NOT $3::boolean "
	       "THEN 'generation_failed' ELSE (ARRAY['running', 'running', "
	       "'running', 'running', 'engine_unreachable', "
	       "'engine_unreachable', 'engine_unreachable', 'starting', "
	       "'stopped', 'finished'])[i % 10 + 1] END, i % 97 "
	       "FROM generate_series(0, $2::integer - 1) i",
	       F.keys.prefix, count, fin, NULL);
	for (int i = 0; i < n; i++) {
		memset(&model[i], 0, sizeof(model[i]));
		snprintf(model[i].status, sizeof(model[i].status), "%s",
			 initial_status(i, finished));
		model[i].turn = i % 97;
	}
}

bool model_apply(mgame *g, int ev)
{
	const th_event *e = &th_events[ev];
	bool changed = false;
	if (e->to && strcmp(g->status, e->from) == 0) {
		snprintf(g->status, sizeof(g->status), "%s", e->to);
		changed = true;
	}
	snprintf(g->health, sizeof(g->health), "%s", e->summary);
	bool publish = changed || strcmp(g->last_pub, e->summary) != 0;
	if (publish)
		snprintf(g->last_pub, sizeof(g->last_pub), "%s", e->summary);
	if (strcmp(g->status, "finished") == 0) /* only finished is final */
		g->last_pub[0] = '\0';
	return publish;
}

void fx_write_entries(fx_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *argv[] = {"XADD",
				      F.keys.stream,
				      "*",
				      "game_id",
				      fx_game(e[i].game),
				      "event_type",
				      th_events[e[i].ev].name};
		cr_assert_eq(redisAppendCommandArgv(F.redis, 7, argv, NULL),
			     REDIS_OK);
	}
	for (size_t i = 0; i < n; i++) {
		redisReply *r;
		cr_assert_eq(redisGetReply(F.redis, (void **)&r), REDIS_OK,
			     "XADD: %s", F.redis->errstr);
		cr_assert_eq(r->type, REDIS_REPLY_STRING, "XADD: %s",
			     r->str ? r->str : "?");
		snprintf(e[i].id, sizeof(e[i].id), "%s", r->str);
		freeReplyObject(r);
	}
}

/* Game index of "<prefix>:gNNNN", or -1. */
static int game_index(const char *id)
{
	size_t pl = strlen(F.keys.prefix);
	if (strncmp(id, F.keys.prefix, pl) != 0 ||
	    strncmp(id + pl, ":g", 2) != 0)
		return -1;
	return atoi(id + pl + 2);
}

void fx_expect_rows(const mgame *model, int n)
{
	char like[128];
	snprintf(like, sizeof(like), "%s:g%%", F.keys.prefix);
	const char *params[1] = {like};
	PGresult *res = PQexecParams(
	    F.pg,
	    "SELECT game_id, status, engine_health, current_turn FROM "
	    "runtime_records WHERE game_id LIKE $1 ORDER BY game_id",
	    1, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
		     PQresultErrorMessage(res));
	cr_assert_eq(PQntuples(res), n, "rows");
	int bad = 0;
	for (int i = 0; i < n; i++) {
		const mgame *m = &model[i];
		const char *st = PQgetvalue(res, i, 1),
			   *h = PQgetvalue(res, i, 2);
		int turn = atoi(PQgetvalue(res, i, 3));
		if (strcmp(st, m->status) || strcmp(h, m->health) ||
		    turn != m->turn) {
			if (bad++ < 5)
				cr_log_error("%s: row %s/%s/%d, model %s/%s/%d",
					     PQgetvalue(res, i, 0), st, h, turn,
					     m->status, m->health, m->turn);
		}
	}
	PQclear(res);
	cr_expect_eq(bad, 0, "%d of %d rows differ from the model (log: %s)",
		     bad, n, F.log);
}

void fx_expect_last_snapshots(const mgame *model, int n)
{
	redisReply *l = th_xrange(F.redis, F.keys.lobby);
	const char **last = calloc((size_t)n, sizeof(*last));
	for (size_t i = 0; i < l->elements; i++) {
		int g = game_index(th_field(l->element[i], "game_id"));
		cr_assert(g >= 0 && g < n, "snapshot of an unknown game");
		last[g] = th_field(l->element[i], "payload");
	}
	int bad = 0;
	for (int i = 0; i < n; i++) {
		char want[512];
		th_payload(want, sizeof(want), fx_game(i), model[i].status,
			   model[i].health, model[i].turn);
		if (!last[i] || strcmp(last[i], want) != 0) {
			if (bad++ < 5)
				cr_log_error("last snapshot of %s: %s, row %s",
					     fx_game(i),
					     last[i] ? last[i] : "(none)",
					     want);
		}
	}
	free(last);
	freeReplyObject(l);
	cr_expect_eq(bad, 0, "%d games' last snapshot differs from the row",
		     bad);
}

/* Index of source id `id` among the accepted snapshots (sorted), or -1. */
static long find_accepted(const fx_entry *const *acc, size_t k, const char *id)
{
	size_t lo = 0, hi = k;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = fx_id_cmp(acc[mid]->id, id);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void fx_expect_lobby_sequence(const mgame *initial, int ngames,
			      const fx_entry *e, size_t n)
{
	mgame *m = malloc((size_t)ngames * sizeof(*m));
	memcpy(m, initial, (size_t)ngames * sizeof(*m));
	const fx_entry **acc = malloc(n * sizeof(*acc));
	const char **acc_payload = malloc(n * sizeof(*acc_payload));
	size_t k = 0, at = 0, repeats = 0;
	redisReply *l = th_xrange(F.redis, F.keys.lobby);
	for (size_t i = 0; i < n; i++) {
		if (!model_apply(&m[e[i].game], e[i].ev))
			continue;
		char want[512];
		const mgame *g = &m[e[i].game];
		th_payload(want, sizeof(want), fx_game(e[i].game), g->status,
			   g->health, g->turn);
		/* A repeat (at-least-once) must be one seen before, unchanged.
		 */
		const char *src;
		while (at < l->elements &&
		       fx_id_cmp(src = th_field(l->element[at], "source_id"),
				 e[i].id) < 0) {
			long j = find_accepted(acc, k, src);
			cr_assert_geq(j, 0,
				      "snapshot %zu (source %s) is not one the "
				      "model publishes",
				      at, src);
			cr_assert_str_eq(
			    th_field(l->element[at], "payload"), acc_payload[j],
			    "repeated snapshot of %s differs", src);
			repeats++;
			at++;
		}
		cr_assert_lt(at, l->elements,
			     "lobby ends before the snapshot of entry %zu (%s)",
			     i, e[i].id);
		src = th_field(l->element[at], "source_id");
		cr_assert_str_eq(src, e[i].id,
				 "snapshot %zu: source_id %s, model wants %s",
				 at, src, e[i].id);
		cr_assert_str_eq(th_field(l->element[at], "payload"), want,
				 "snapshot of %s", e[i].id);
		acc[k] = &e[i];
		acc_payload[k++] = th_field(l->element[at], "payload");
		at++;
	}
	for (; at < l->elements; at++, repeats++) {
		const char *src = th_field(l->element[at], "source_id");
		long j = find_accepted(acc, k, src);
		cr_assert_geq(j, 0, "snapshot %zu (source %s) beyond the model",
			      at, src);
		cr_assert_str_eq(th_field(l->element[at], "payload"),
				 acc_payload[j], "repeated snapshot of %s",
				 src);
	}
	cr_log_info("lobby: %zu snapshots, %zu expected, %zu repeats",
		    l->elements, k, repeats);
	freeReplyObject(l);
	free(acc);
	free(acc_payload);
	free(m);
}
