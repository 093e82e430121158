/*
 * record_store_pg.c -- he_record_store over libpq.
 *
 * The batch travels as four text[] parameters of one prepared statement;
 * the CAS-or-fallback per element runs server-side in stream order (see
 * schema/002_health_events_apply.sql). No data is ever formatted into SQL
 * text: array literals are parameters, quoted element by element.
 */
#include "record_store_pg.h"

#include "he_clock.h"
#include "he_stream_id.h"
#include "he_text.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const apply_sql =
    "SELECT o_ord, o_outcome, o_status, o_engine_health, o_current_turn "
    "FROM health_events_apply($1::text, $2::bigint, $3::bigint, $4::bigint, "
    "$5::bigint, $6::bigint, $7::text[], $8::text[], $9::text[], "
    "$10::text[], $11::bigint, $12::bigint, $13::text, $14::text, "
    "$15::integer)";

/* SQLSTATEs of health_events_apply's refusals: a stale epoch
 * (schema/003), an applied position other than the batch follows (004). */
#define SQLSTATE_FENCED	  "HE001"
#define SQLSTATE_POSITION "HE002"

static int prepare(he_pg_session *pg, void *arg);

void he_record_store_pg_init(he_record_store_pg *s, const apphost_services *svc)
{
	memset(s, 0, sizeof(*s));
	he_pg_init(&s->pg, svc);
	/* Each connection leased prepares the apply. */
	he_pg_set_on_connect(&s->pg, prepare, s);
	/*
	 * Named by its text: a pooled connection keeps what an earlier build
	 * prepared, and "already prepared" is tolerated, so a build whose
	 * SQL changed must not find its old text under the same name.
	 */
	snprintf(
	    s->stmt, sizeof(s->stmt), "he_apply_%016llx",
	    (unsigned long long)he_text_hash(apply_sql, strlen(apply_sql)));
}

void he_record_store_pg_set_abort(he_record_store_pg *s,
				  const atomic_bool *flag)
{
	he_pg_set_abort(&s->pg, flag);
}

void he_record_store_pg_set_timeout(he_record_store_pg *s, unsigned ms)
{
	he_pg_set_timeout(&s->pg, ms);
}

void he_record_store_pg_set_statement_timeout(he_record_store_pg *s,
					      unsigned ms)
{
	he_pg_set_statement_timeout(&s->pg, ms);
}

void he_record_store_pg_set_async_commit(he_record_store_pg *s, bool on)
{
	he_pg_set_async_commit(&s->pg, on);
}

void he_record_store_pg_set_heard(he_record_store_pg *s, he_heard *heard)
{
	he_pg_set_heard(&s->pg, heard);
}

const char *he_record_store_pg_err(const he_record_store_pg *s)
{
	return he_pg_error(&s->pg);
}

void he_record_store_pg_set_token(he_record_store_pg *s, const char *token)
{
	s->token = token;
}

void he_record_store_pg_set_fence(he_record_store_pg *s, const char *lease,
				  uint64_t epoch)
{
	s->lease = lease;
	snprintf(s->epoch, sizeof(s->epoch), "%llu", (unsigned long long)epoch);
}

void he_record_store_pg_close(he_record_store_pg *s)
{
	he_pg_close(&s->pg);
	for (int i = 0; i < 4; i++)
		free(s->buf[i]);
	memset(s->buf, 0, sizeof(s->buf));
}

/*
 * A failed result: the apply's own refusals (a stale epoch, a moved
 * position), data the server refuses whatever the retry, or the
 * session's classes (pg_session.h).
 */
static int fail(he_record_store_pg *s, const char *what, PGresult *res)
{
	he_pg_set_error(&s->pg, what, res);
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char code[6];
	snprintf(code, sizeof(code), "%s", st ? st : "");
	const char *state = st ? code : NULL; /* outlives PQclear(res) */
	bool fenced = state && strcmp(state, SQLSTATE_FENCED) == 0;
	bool moved = state && strcmp(state, SQLSTATE_POSITION) == 0;
	/* Classes 22 (data exception) and 23 (integrity constraint): the
	 * data is refused whatever the retry. Keep the primary message only
	 * (no DETAIL or CONTEXT), on one line, for the dead letter. */
	bool data = state && (strncmp(state, "22", 2) == 0 ||
			      strncmp(state, "23", 2) == 0);
	if (data) {
		const char *m =
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		snprintf(s->refusal, sizeof(s->refusal), "SQLSTATE %.5s: %s",
			 state, m ? m : "");
		he_text_one_line(s->refusal);
	}
	PQclear(res);
	if ((fenced || moved) &&
	    PQtransactionStatus(s->pg.conn) == PQTRANS_IDLE)
		return fenced ? HE_EFENCED : HE_EPOSITION;
	int r = he_pg_classify(&s->pg, state);
	return r == HE_EIO && data ? HE_EDATA : r;
}

/* On each new connection: prepare the apply. */
static int prepare(he_pg_session *pg, void *arg)
{
	he_record_store_pg *s = arg;
	PGresult *res =
	    he_pg_await(pg, "prepare health_events_apply",
			PQsendPrepare(pg->conn, s->stmt, apply_sql, 0, NULL));
	if (!res)
		return HE_ECONN;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* 42P05: already prepared on this pooled connection. */
		if (!state || strcmp(state, "42P05") != 0)
			return fail(s, "prepare health_events_apply", res);
	}
	PQclear(res);
	return HE_OK;
}

bool he_record_store_pg_reconnected(he_record_store_pg *s)
{
	return he_pg_reconnected(&s->pg);
}

int he_record_store_pg_ping(he_record_store_pg *s)
{
	return he_pg_ping(&s->pg);
}

/* Append to scratch buffer k, growing it. */
static int put(he_record_store_pg *s, int k, size_t *len, const char *p,
	       size_t n)
{
	if (he_grow((void **)&s->buf[k], &s->cap[k], *len + n + 1, 1) < 0)
		return HE_ENOMEM;
	memcpy(s->buf[k] + *len, p, n);
	*len += n;
	s->buf[k][*len] = '\0';
	return HE_OK;
}

/* Append one array element: NULL, or "..." with " and \ escaped. */
static int put_elem(he_record_store_pg *s, int k, size_t *len, const char *p,
		    size_t n, bool first)
{
	int r = first ? HE_OK : put(s, k, len, ",", 1);
	if (r < 0)
		return r;
	if (!p)
		return put(s, k, len, "NULL", 4);
	if ((r = put(s, k, len, "\"", 1)) < 0)
		return r;
	size_t from = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '"' && p[i] != '\\')
			continue;
		if ((r = put(s, k, len, p + from, i - from)) < 0 ||
		    (r = put(s, k, len, "\\", 1)) < 0)
			return r;
		from = i;
	}
	if ((r = put(s, k, len, p + from, n - from)) < 0)
		return r;
	return put(s, k, len, "\"", 1);
}

static int build_arrays(he_record_store_pg *s, const he_mutation *ops, size_t n)
{
	size_t len[4] = {0, 0, 0, 0};
	int r = 0;
	for (int k = 0; k < 4 && r == 0; k++)
		r = put(s, k, &len[k], "{", 1);
	for (size_t i = 0; i < n && r == 0; i++) {
		const he_mutation *m = &ops[i];
		bool first = i == 0;
		r = put_elem(s, 0, &len[0], m->game_id, m->game_id_len, first);
		if (!r)
			r = put_elem(s, 1, &len[1], m->summary,
				     strlen(m->summary), first);
		if (!r)
			r = put_elem(s, 2, &len[2], m->to ? m->expected : NULL,
				     m->to ? strlen(m->expected) : 0, first);
		if (!r)
			r = put_elem(s, 3, &len[3], m->to,
				     m->to ? strlen(m->to) : 0, first);
	}
	for (int k = 0; k < 4 && r == 0; k++)
		r = put(s, k, &len[k], "}", 1);
	return r;
}

static int copy_field(he_record_store_pg *s, char *dst, size_t cap,
		      const PGresult *res, int row, int col)
{
	size_t n = (size_t)PQgetlength(res, row, col);
	if (n >= cap) {
		he_pg_errorf(
		    &s->pg,
		    "row %d column %d is %zu bytes, at most %zu handled", row,
		    col, n, cap - 1);
		return HE_EPROTO;
	}
	memcpy(dst, PQgetvalue(res, row, col), n);
	dst[n] = '\0';
	return HE_OK;
}

static int parse_outcome(const char *o, he_apply_outcome *out)
{
	static const struct {
		const char *name;
		he_apply_outcome v;
	} map[] = {
	    {"transitioned", HE_APPLY_TRANSITIONED},
	    {"conflict", HE_APPLY_CONFLICT},
	    {"health", HE_APPLY_HEALTH},
	    {"not_found", HE_APPLY_NOT_FOUND},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(o, map[i].name) == 0) {
			*out = map[i].v;
			return HE_OK;
		}
	return HE_EPROTO;
}

static int read_results(he_record_store_pg *s, const PGresult *res, size_t n,
			he_mutation_result *results)
{
	if ((size_t)PQntuples(res) != n || PQnfields(res) != 5) {
		he_pg_errorf(
		    &s->pg,
		    "health_events_apply returned %d rows for %zu entries",
		    PQntuples(res), n);
		return HE_EPROTO;
	}
	for (size_t i = 0; i < n; i++) {
		int row = (int)i;
		he_mutation_result *m = &results[i];
		memset(m, 0, sizeof(*m));
		if (atol(PQgetvalue(res, row, 0)) != (long)i + 1 ||
		    parse_outcome(PQgetvalue(res, row, 1), &m->outcome) < 0) {
			he_pg_errorf(
			    &s->pg,
			    "health_events_apply row %zu is out of order "
			    "or has outcome \"%.32s\"",
			    i, PQgetvalue(res, row, 1));
			return HE_EPROTO;
		}
		if (m->outcome == HE_APPLY_NOT_FOUND)
			continue;
		int r = copy_field(s, m->row.status, sizeof(m->row.status), res,
				   row, 2);
		if (!r)
			r = copy_field(s, m->row.engine_health,
				       sizeof(m->row.engine_health), res, row,
				       3);
		if (r < 0)
			return r;
		m->row.current_turn = (int32_t)atol(PQgetvalue(res, row, 4));
	}
	return HE_OK;
}

/* "ms-seq" as two decimal parameters; false when it is no stream id. */
static bool id_params(const char *id, char ms[24], char seq[24])
{
	he_stream_id v;
	if (!id || he_stream_id_parse(id, &v) != 0)
		return false;
	snprintf(ms, 24, "%llu", v.ms);
	snprintf(seq, 24, "%llu", v.seq);
	return true;
}

/* synchronous_commit of this session: "on" or "off". */
static int commit_mode(he_record_store_pg *s, const char *on_off)
{
	const char *params[1] = {on_off};
	PGresult *res;
	int r =
	    he_pg_query(&s->pg, "set synchronous_commit",
			"SELECT set_config('synchronous_commit', $1, false)", 1,
			params, &res);
	if (r == HE_OK)
		PQclear(res);
	return r;
}

int he_record_store_pg_send(he_record_store_pg *s, const he_apply_span *span,
			    const he_mutation *ops, size_t n)
{
	char pos[6][24];
	s->refusal[0] = '\0';
	s->sent = 0;
	if (!id_params(span->after, pos[0], pos[1]) ||
	    !id_params(span->last, pos[2], pos[3]) ||
	    (span->refused_id &&
	     !id_params(span->refused_id, pos[4], pos[5]))) {
		he_pg_errorf(&s->pg,
			     "health_events_apply: a position is no stream id");
		return HE_EINVAL;
	}
	int r = build_arrays(s, ops, n);
	if (r < 0)
		return r;
	if ((r = he_pg_connect(&s->pg)) < 0)
		return r;
	if (!s->lease) {
		he_pg_errorf(&s->pg, "health_events_apply: no lease epoch set");
		return HE_EFENCED;
	}
	if (s->sync_next && (r = commit_mode(s, "on")) < 0)
		return r;
	bool refused = span->refused_id != NULL;
	/* Lock waits end with the statement's own bound (at least 1 ms). */
	char lock_ms[16];
	snprintf(lock_ms, sizeof(lock_ms), "%u",
		 s->pg.stmt_ms ? s->pg.stmt_ms : 600000);
	const char *params[15] = {s->lease,
				  s->epoch,
				  pos[0],
				  pos[1],
				  pos[2],
				  pos[3],
				  s->buf[0],
				  s->buf[1],
				  s->buf[2],
				  s->buf[3],
				  refused ? pos[4] : NULL,
				  refused ? pos[5] : NULL,
				  refused ? span->refused_reason : NULL,
				  s->token ? s->token : "",
				  lock_ms};
	s->sent = PQsendQueryPrepared(s->pg.conn, s->stmt, 15, params, NULL,
				      NULL, 0) == 1
		      ? 1
		      : -1;
	s->sent_n = n;
	return HE_OK;
}

int he_record_store_pg_receive(he_record_store_pg *s,
			       he_mutation_result *results)
{
	if (s->sent == 0) {
		he_pg_errorf(&s->pg, "health_events_apply: nothing was sent");
		return HE_ESTATE;
	}
	PGresult *res = he_pg_await(&s->pg, "health_events_apply", s->sent);
	s->sent = 0;
	if (!res)
		return HE_ECONN;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return fail(s, "health_events_apply", res);
	int r = read_results(s, res, s->sent_n, results);
	PQclear(res);
	/* The apply committed whatever the SET answers: a failed one leaves
	 * the next apply waiting too, and a new connection starts off. */
	if (r == HE_OK && s->sync_next && commit_mode(s, "off") == HE_OK)
		s->sync_next = false;
	return r;
}

static int apply(void *ctx, const he_apply_span *span, const he_mutation *ops,
		 size_t n, he_mutation_result *results)
{
	he_record_store_pg *s = ctx;
	int r = he_record_store_pg_send(s, span, ops, n);
	return r < 0 ? r : he_record_store_pg_receive(s, results);
}

static const char *refusal(void *ctx)
{
	return ((he_record_store_pg *)ctx)->refusal;
}

static int position(void *ctx, char *out, size_t cap)
{
	he_record_store_pg *s = ctx;
	const char *params[1] = {s->lease ? s->lease : ""};
	PGresult *res;
	s->sync_next = s->pg.async_commit;
	int r = he_pg_query(
	    &s->pg, "applied position",
	    "SELECT ms, seq FROM health_events_progress WHERE name = $1", 1,
	    params, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? HE_OK : HE_ENOENT;
	if (r == HE_OK)
		snprintf(out, cap, "%s-%s", PQgetvalue(res, 0, 0),
			 PQgetvalue(res, 0, 1));
	PQclear(res);
	return r;
}

static int rows(void *ctx, const he_mutation *ops, size_t n,
		he_mutation_result *results)
{
	he_record_store_pg *s = ctx;
	size_t len = 0;
	int r = put(s, 0, &len, "{", 1);
	for (size_t i = 0; i < n && r == 0; i++)
		r = put_elem(s, 0, &len, ops[i].game_id, ops[i].game_id_len,
			     i == 0);
	if (r == 0)
		r = put(s, 0, &len, "}", 1);
	if (r < 0)
		return r;
	const char *params[1] = {s->buf[0]};
	PGresult *res;
	r = he_pg_query(&s->pg, "read rows",
			"SELECT game_id, status, engine_health, current_turn "
			"FROM runtime_records WHERE game_id = ANY ($1::text[])",
			1, params, &res);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		results[i] =
		    (he_mutation_result){.outcome = HE_APPLY_NOT_FOUND};
	for (int row = 0; row < PQntuples(res) && r == 0; row++) {
		const char *g = PQgetvalue(res, row, 0);
		size_t glen = (size_t)PQgetlength(res, row, 0);
		for (size_t i = 0; i < n && r == 0; i++) {
			he_mutation_result *m = &results[i];
			if (ops[i].game_id_len != glen ||
			    memcmp(ops[i].game_id, g, glen) != 0)
				continue;
			m->outcome = HE_APPLY_HEALTH;
			r = copy_field(s, m->row.status, sizeof(m->row.status),
				       res, row, 1);
			if (!r)
				r = copy_field(s, m->row.engine_health,
					       sizeof(m->row.engine_health),
					       res, row, 2);
			m->row.current_turn =
			    (int32_t)atol(PQgetvalue(res, row, 3));
		}
	}
	PQclear(res);
	return r;
}

static int refused(void *ctx, const char *after, const char *last,
		   he_refused_fn fn, void *arg)
{
	he_record_store_pg *s = ctx;
	char pos[4][24];
	if (!id_params(after, pos[0], pos[1]) ||
	    !id_params(last, pos[2], pos[3]))
		return HE_EINVAL;
	const char *params[5] = {s->lease ? s->lease : "", pos[0], pos[1],
				 pos[2], pos[3]};
	PGresult *res;
	int r = he_pg_query(
	    &s->pg, "refused entries",
	    "SELECT ms || '-' || seq, reason FROM health_events_refused "
	    "WHERE name = $1 AND (ms, seq) > ($2::bigint, $3::bigint) "
	    "AND (ms, seq) <= ($4::bigint, $5::bigint) ORDER BY ms, seq",
	    5, params, &res);
	if (r < 0)
		return r;
	for (int row = 0; row < PQntuples(res); row++)
		fn(arg, PQgetvalue(res, row, 0), PQgetvalue(res, row, 1));
	PQclear(res);
	return HE_OK;
}

he_record_store he_record_store_pg_port(he_record_store_pg *s)
{
	return (he_record_store){.ctx = s,
				 .apply = apply,
				 .refusal = refusal,
				 .position = position,
				 .rows = rows,
				 .refused = refused};
}
