/* preflight.c -- see preflight.h. */
#include "preflight.h"

#include "grants.h"	 /* host/grants.c: the one parser of the list */
#include "grants_text.h" /* schema/grants, as built into this file */
#include "pg_session.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_TIMEOUT_MS 1000
/* A catalogue lookup answers in milliseconds; a server that does not
 * within this is failing, and the check is asked again. */
#define PG_CHECK_MS 5000

#define LOG(pf, lvl, msg, ...)                                                 \
	(pf)->svc->log((pf)->svc->host, lvl, msg, __VA_ARGS__)

void he_preflight_init(he_preflight *pf, const apphost_services *svc,
		       const he_config *cfg)
{
	memset(pf, 0, sizeof(*pf));
	pf->svc = svc;
	pf->cfg = cfg;
	const char *s = svc->config_get(svc->host, "APPHOST_REDIS_SENTINELS");
	pf->sentinel = s != NULL && s[0] != '\0';
}

/* Append s to the string in buf (cap bytes), cut where it is full. */
static void append(char *buf, size_t cap, const char *s)
{
	size_t n = strlen(buf), k = strlen(s);
	if (n + 1 >= cap)
		return;
	if (k > cap - n - 1)
		k = cap - n - 1;
	memcpy(buf + n, s, k);
	buf[n + k] = '\0';
}

/* Append "; what" to pf->err (the first without the separator). */
static void add(he_preflight *pf, const char *what)
{
	if (pf->err[0])
		append(pf->err, sizeof(pf->err), "; ");
	append(pf->err, sizeof(pf->err), what);
}

/* Put `head` before what pf->err holds. */
static void prefix(he_preflight *pf, const char *head, const char *tail)
{
	char line[sizeof(pf->err)] = "";
	append(line, sizeof(line), head);
	append(line, sizeof(line), pf->err);
	append(line, sizeof(line), tail);
	memcpy(pf->err, line, sizeof(line));
}

/* ---- PostgreSQL ---------------------------------------------------------- */

/* One row, one column of a query with one or two parameters: "t", "f",
 * "" (NULL), or NULL when it failed (the reason in pf->err). malloc()ed. */
static char *pg_value(he_preflight *pf, he_pg_session *c, const char *sql,
		      const char *a, const char *b)
{
	const char *params[2] = {a, b};
	PGresult *r;
	char *v = NULL;
	if (he_pg_query(c, "permission check", sql, b ? 2 : 1, params, &r) <
	    0) {
		snprintf(pf->err, sizeof(pf->err), "%s", he_pg_error(c));
		return NULL;
	}
	if (PQntuples(r) == 1)
		v = strdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
	else
		snprintf(pf->err, sizeof(pf->err), "permission check: %d rows",
			 PQntuples(r));
	PQclear(r);
	return v;
}

/* Check one line of the list; false when a query failed. */
static bool pg_check(he_preflight *pf, he_pg_session *c,
		     const struct apphost_grant *g)
{
	char what[512], *v;
	if (g->kind == APPHOST_GRANT_SCHEMA) {
		v = pg_value(pf, c,
			     "SELECT CASE WHEN current_schema() IS NULL THEN "
			     "NULL ELSE has_schema_privilege(current_schema(), "
			     "$1) END",
			     "USAGE", NULL);
		if (v && strcmp(v, "t") != 0)
			add(pf, v[0] ? "USAGE on the schema of the search path "
				       "(GRANT USAGE ON SCHEMA)"
				     : "a schema on the search path (none "
				       "exists)");
		free(v);
		return v != NULL;
	}
	if (g->kind == APPHOST_GRANT_FUNCTION) {
		snprintf(what, sizeof(what), "%s(%s)", g->name, g->args);
		v = pg_value(pf, c,
			     "SELECT CASE WHEN to_regprocedure($1) IS NULL "
			     "THEN NULL ELSE has_function_privilege("
			     "to_regprocedure($1), 'EXECUTE') END",
			     what, NULL);
		if (v && strcmp(v, "t") != 0) {
			char line[600];
			snprintf(line, sizeof(line), "%s function %s",
				 v[0] ? "EXECUTE on" : "a (migrated)", what);
			add(pf, line);
		}
		free(v);
		return v != NULL;
	}
	v = pg_value(pf, c, "SELECT coalesce(to_regclass($1)::oid::text, '')",
		     g->name, NULL);
	if (v && !v[0]) {
		snprintf(what, sizeof(what), "a (migrated) table %s", g->name);
		add(pf, what);
	}
	if (!v || !v[0]) {
		free(v);
		return v != NULL;
	}
	/* has_table_privilege once per privilege: each is named. */
	for (const char *p = g->privs; *p;) {
		size_t n = strcspn(p, ",");
		char priv[32];
		snprintf(priv, sizeof(priv), "%.*s", (int)n, p);
		char *ok = pg_value(
		    pf, c, "SELECT has_table_privilege($1::oid, $2)", v, priv);
		if (!ok) {
			free(v);
			return false;
		}
		if (strcmp(ok, "t") != 0) {
			snprintf(what, sizeof(what), "%s on table %s", priv,
				 g->name);
			add(pf, what);
		}
		free(ok);
		p += n;
		while (*p == ',' || *p == ' ')
			p++;
	}
	free(v);
	return true;
}

int he_preflight_pg(he_preflight *pf)
{
	struct apphost_grants list;
	char why[200];
	pf->err[0] = '\0';
	if (apphost_grants_parse(he_grants_text, &list, why, sizeof(why)) < 0) {
		snprintf(pf->err, sizeof(pf->err), "built-in grants list: %s",
			 why);
		return HE_EINVAL;
	}
	/* Bounded like every call: the consumer thread asks this. */
	he_pg_session sess, *c = &sess;
	he_pg_init(c, pf->svc);
	he_pg_set_timeout(c, PG_CHECK_MS);
	int r = he_pg_connect(c);
	if (r < 0) {
		snprintf(pf->err, sizeof(pf->err), "%s", he_pg_error(c));
		apphost_grants_free(&list);
		return r;
	}
	bool ok = true;
	/* The schema first: without USAGE nothing in it can be found. */
	for (int pass = 0; pass < 2 && ok && !pf->err[0]; pass++)
		for (size_t i = 0; i < list.n && ok; i++)
			if ((list.v[i].kind == APPHOST_GRANT_SCHEMA) ==
			    (pass == 0))
				ok = pg_check(pf, c, &list.v[i]);
	he_pg_drop(c, !ok);
	apphost_grants_free(&list);
	if (!ok)
		return HE_EIO;
	if (pf->err[0]) {
		prefix(pf, "role lacks ",
		       " (apphost-migrate --grant prints what it needs)");
		return HE_EPERM;
	}
	return HE_OK;
}

/* ---- Redis --------------------------------------------------------------- */

/*
 * ARGV: per command its argument count, then its arguments. Returns the
 * 1-based positions of those the user may not run. no-writes: it may run
 * anywhere and cannot write; acl_check_cmd executes nothing.
 */
static const char acl_script[] =
    "#!lua flags=no-writes,allow-stale\n"
    "local bad, i, n = {}, 1, 0\n"
    "while i <= #ARGV do\n"
    "  local k = tonumber(ARGV[i])\n"
    "  n = n + 1\n"
    "  local ok, allowed = pcall(redis.acl_check_cmd, "
    "unpack(ARGV, i + 1, i + k))\n"
    "  if not ok or not allowed then bad[#bad + 1] = n end\n"
    "  i = i + k + 1\n"
    "end\n"
    "return bad\n";

#define MAX_ARGV (3 + 40 * (HE_NEED_ARGS + 1))

/* The needs this configuration has, in list order (at most 64: out has
 * room for that many); returns how many. */
static size_t needs(const he_preflight *pf, const he_redis_need **out)
{
	size_t n = 0;
	for (size_t i = 0; i < he_redis_nneeds && n < 64; i++)
		if (!he_redis_needs[i].sentinel_only || pf->sentinel)
			out[n++] = &he_redis_needs[i];
	return n;
}

static void name_need(he_preflight *pf, const he_redis_need *nd, char *buf,
		      size_t cap)
{
	const char *key = he_need_key_name(pf->cfg, nd->key);
	snprintf(buf, cap, "%s%s%s", nd->acl, key[0] ? " on key " : "", key);
}

int he_preflight_redis(he_preflight *pf)
{
	const he_redis_need *list[64];
	size_t n = needs(pf, list);
	const char *argv[MAX_ARGV];
	char counts[64][4];
	int argc = 0;
	pf->err[0] = '\0';
	argv[argc++] = "EVAL";
	argv[argc++] = acl_script;
	argv[argc++] = "0";
	for (size_t i = 0; i < n; i++) {
		int k = 0;
		while (k < HE_NEED_ARGS && list[i]->argv[k])
			k++;
		snprintf(counts[i], sizeof(counts[i]), "%d", k);
		argv[argc++] = counts[i];
		for (int j = 0; j < k; j++)
			argv[argc++] =
			    strcmp(list[i]->argv[j], "$KEY") == 0
				? he_need_key_name(pf->cfg, list[i]->key)
				: list[i]->argv[j];
	}
	redisContext *c = NULL;
	int r = pf->svc->redis_lease(pf->svc->host, LEASE_TIMEOUT_MS, &c);
	if (r < 0) {
		snprintf(pf->err, sizeof(pf->err), "redis lease: %s",
			 apphost_strerror(r));
		return r;
	}
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	if (!rep) {
		snprintf(pf->err, sizeof(pf->err), "permission check: %s",
			 c->errstr);
		pf->svc->redis_release(pf->svc->host, c, true);
		return HE_EIO;
	}
	pf->svc->redis_release(pf->svc->host, c, false);
	r = HE_OK;
	if (rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOPERM", 6) == 0) {
		add(pf, "eval");
		r = HE_EPERM;
	} else if (rep->type != REDIS_REPLY_ARRAY) {
		/* Before Redis 7 there is no acl_check_cmd (nor ACLs worth
		 * asking about with it): nothing to check. */
		if (!pf->redis_unchecked_said)
			LOG(pf, APPHOST_LOG_INFO,
			    "redis permissions not checked: the server cannot "
			    "answer the check (Redis 7 needed)",
			    "reply=\"%.120s\"",
			    rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
		pf->redis_unchecked_said = true;
	} else {
		for (size_t i = 0; i < rep->elements; i++) {
			long long at = rep->element[i]->integer;
			if (at < 1 || (size_t)at > n)
				continue;
			const he_redis_need *nd = list[at - 1];
			char what[HE_KEY_MAX + 64];
			name_need(pf, nd, what, sizeof(what));
			if (nd->required) {
				add(pf, what);
				r = HE_EPERM;
				continue;
			}
			size_t w = (size_t)(nd - he_redis_needs);
			if (w < sizeof(pf->warned) && !pf->warned[w])
				LOG(pf, APPHOST_LOG_WARN,
				    "redis user may not run an optional "
				    "command",
				    "command=\"%s\" lost=\"%s\"", what,
				    nd->lost);
			if (w < sizeof(pf->warned))
				pf->warned[w] = true;
		}
	}
	freeReplyObject(rep);
	if (r == HE_EPERM && !pf->acl_said) {
		/* What to give the user, from this configuration's keys. */
		char *acl = he_redis_acl_line(pf->cfg, "USER", pf->sentinel);
		if (acl)
			LOG(pf, APPHOST_LOG_WARN,
			    "the Redis ACL this configuration needs",
			    "acl='%s'", acl);
		free(acl);
		pf->acl_said = true;
	}
	if (r == HE_EPERM) {
		prefix(pf, "user may not run ", "");
	}
	return r;
}
