/* redis_pg.c -- see redis_pg.h. */
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static redisReply *vcmd(redisContext *c, const char *first, va_list ap)
{
	const char *argv[64];
	int argc = 0;
	for (const char *a = first; a && argc < 64;
	     a = va_arg(ap, const char *))
		argv[argc++] = a;
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	cr_assert_not_null(r, "redis command %s failed: %s", argv[0],
			   c->errstr);
	return r;
}

redisReply *th_cmd(redisContext *c, ...)
{
	va_list ap;
	va_start(ap, c);
	const char *first = va_arg(ap, const char *);
	redisReply *r = vcmd(c, first, ap);
	va_end(ap);
	return r;
}

char *th_xadd(redisContext *c, const char *stream, ...)
{
	const char *argv[64] = {"XADD", stream, "*"};
	int argc = 3;
	va_list ap;
	va_start(ap, stream);
	for (const char *a; argc < 64 && (a = va_arg(ap, const char *));)
		argv[argc++] = a;
	va_end(ap);
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD %s failed: %s",
		  stream, r && r->str ? r->str : c->errstr);
	char *id = strdup(r->str);
	freeReplyObject(r);
	return id;
}

char *th_get(redisContext *c, const char *key)
{
	redisReply *r = th_cmd(c, "GET", key, NULL);
	char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
	freeReplyObject(r);
	return v;
}

redisReply *th_xrange(redisContext *c, const char *stream)
{
	redisReply *r = th_cmd(c, "XRANGE", stream, "-", "+", NULL);
	cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "XRANGE %s: %s", stream,
		     r->str ? r->str : "");
	return r;
}

size_t th_xlen(redisContext *c, const char *stream)
{
	redisReply *r = th_cmd(c, "XLEN", stream, NULL);
	cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "XLEN %s: %s", stream,
		     r->str ? r->str : "");
	size_t n = (size_t)r->integer;
	freeReplyObject(r);
	return n;
}

const char *th_field(const redisReply *entry, const char *field)
{
	const redisReply *f = entry->element[1];
	for (size_t i = 0; i + 1 < f->elements; i += 2)
		if (strcmp(f->element[i]->str, field) == 0)
			return f->element[i + 1]->str;
	return NULL;
}

void th_sql(PGconn *c, const char *sql, ...)
{
	const char *params[16];
	int n = 0;
	va_list ap;
	va_start(ap, sql);
	for (const char *p; n < 16 && (p = va_arg(ap, const char *));)
		params[n++] = p;
	va_end(ap);
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK,
		  "SQL failed: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

char *th_sql_value(PGconn *c, const char *sql, const char *param)
{
	const char *params[1] = {param};
	PGresult *res =
	    PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "SQL failed: %s: %s",
		     sql, PQresultErrorMessage(res));
	char *v = PQntuples(res) && !PQgetisnull(res, 0, 0)
		      ? strdup(PQgetvalue(res, 0, 0))
		      : NULL;
	PQclear(res);
	return v;
}

void th_insert_game(PGconn *c, const char *game_id, const char *status,
		    int current_turn)
{
	char turn[16];
	snprintf(turn, sizeof(turn), "%d", current_turn);
	th_sql(c,
	       "INSERT INTO runtime_records (game_id, status, current_turn) "
	       "VALUES ($1, $2, $3::integer)",
	       game_id, status, turn, NULL);
}

unsigned long long th_lease(PGconn *c, const char *name, const char *holder,
			    const char *token, const char *ms,
			    const char *min_epoch)
{
	const char *p[] = {name, holder, token, ms, min_epoch};
	PGresult *res = PQexecParams(c,
				     "SELECT o_epoch FROM health_events_lease("
				     "$1, $2, $3, $4::integer, $5::bigint)",
				     5, NULL, p, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
		     PQresultErrorMessage(res));
	unsigned long long e = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return e;
}

unsigned long long th_take_lease(PGconn *c, const char *name, const char *token)
{
	unsigned long long e = th_lease(c, name, "test", token, "60000", "0");
	cr_assert_gt(e, 0, "lease %s not taken", name);
	return e;
}

char *th_row(PGconn *c, const char *game_id)
{
	return th_sql_value(c,
			    "SELECT status || '/' || engine_health || '/' || "
			    "current_turn FROM runtime_records WHERE game_id = "
			    "$1",
			    game_id);
}

void th_payload(char *out, size_t cap, const char *game, const char *status,
		const char *health, int turn)
{
	int n = snprintf(out, cap,
			 "{\"game_id\":\"%s\",\"runtime_status\":\"%s\","
			 "\"engine_health_summary\":\"%s\",\"current_turn\":%d,"
			 "\"player_turn_stats\":null}",
			 game, status, health, turn);
	cr_assert(n > 0 && (size_t)n < cap, "payload of %s: %d bytes", game, n);
}

void th_keys_init(th_keys *k, const char *tag)
{
	snprintf(k->prefix, sizeof(k->prefix), "%s", th_unique(tag));
	snprintf(k->stream, sizeof(k->stream), "%s:in", k->prefix);
	snprintf(k->lobby, sizeof(k->lobby), "%s:lobby", k->prefix);
	snprintf(k->dead, sizeof(k->dead), "%s:dead", k->prefix);
	snprintf(k->offset_key, sizeof(k->offset_key),
		 "gamemaster:stream_offsets:%s", k->prefix);
}

double th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bool th_wait_offset(redisContext *c, const char *key, const char *want,
		    int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;
	do {
		char *v = th_get(c, key);
		bool ok = v && strcmp(v, want) == 0;
		free(v);
		if (ok)
			return true;
		usleep(20000);
	} while (th_now_ms() < end);
	return false;
}

int th_lease_holder(PGconn *c, const char *name, const char *tag)
{
	char *h = th_sql_value(c,
			       "SELECT holder FROM health_events_leader "
			       "WHERE name = $1 AND expires_at > now()",
			       name);
	int who = -1;
	size_t n = strlen(tag);
	if (h != NULL && strncmp(h, tag, n) == 0 && h[n] == '-')
		who = atoi(h + n + 1);
	free(h);
	return who;
}

void th_oom_committed(redisContext *c, const th_keys *k, const char *game,
		      int timeout_ms)
{
	char *id = th_xadd(c, k->stream, "game_id", game, "event_type",
			   "container_oom", NULL);
	cr_assert(th_wait_offset(c, k->offset_key, id, timeout_ms),
		  "the entry %s for %s was not committed", id, game);
	free(id);
}

const char *th_unique(const char *tag)
{
	static char buf[128];
	static int n;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, sizeof(buf), "%s:%d:%ld:%d", tag, (int)getpid(),
		 (long)ts.tv_nsec, ++n);
	return buf;
}

bool th_wait_apply_blocked(PGconn *c, int timeout_ms)
{
	double t0 = th_now_ms();
	do {
		char *v = th_sql_value(c,
				       "SELECT count(*) FROM pg_stat_activity "
				       "WHERE wait_event_type = 'Lock' AND "
				       "query LIKE $1",
				       "%health_events_apply%");
		bool yes = v && atoi(v) > 0;
		free(v);
		if (yes)
			return true;
		usleep(10000);
	} while (th_now_ms() - t0 < timeout_ms);
	return false;
}

const th_event th_events[TH_EVENT_COUNT] = {
    {"container_started", "healthy", NULL, NULL},
    {"probe_recovered", "healthy", "engine_unreachable", "running"},
    {"container_exited", "exited", "running", "engine_unreachable"},
    {"container_oom", "oom", "running", "engine_unreachable"},
    {"container_disappeared", "disappeared", "running", "engine_unreachable"},
    {"inspect_unhealthy", "unhealthy", NULL, NULL},
    {"probe_failed", "probe_failed", NULL, NULL},
};

char *th_world(redisContext *redis, PGconn *pg, const th_keys *k)
{
	char *off = th_get(redis, k->offset_key);
	size_t lobby = th_xlen(redis, k->lobby), dead = th_xlen(redis, k->dead);
	char *rows = th_sql_value(
	    pg,
	    "SELECT string_agg(game_id || status || engine_health || "
	    "updated_at::text || xmin::text, ';' ORDER BY game_id) FROM "
	    "runtime_records WHERE game_id LIKE $1 || ':%'",
	    k->prefix);
	char *w;
	cr_assert(asprintf(&w, "lobby=%zu dead=%zu offset=%s rows=%s", lobby,
			   dead, off ? off : "-", rows ? rows : "-") > 0);
	free(off);
	free(rows);
	return w;
}
