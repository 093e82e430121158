/*
 * Suite grants: the list of what apphost's PostgreSQL role needs
 * (schema/grants) against what the migrations create and what the
 * plugin's SQL calls, and a role given exactly the statements
 * `apphost-migrate --grant` prints running health_events: leader,
 * standby, a killed leader replaced, a graceful stop.
 *
 * Each test has a database of its own, migrated by an owner role of its
 * own; the application role's name holds a space and a quote, so only
 * properly quoted statements grant it anything. PUBLIC loses its rights
 * on the schema there, as a hardened database would have it.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grants.h"

static PGconn *su;    /* the servers' superuser, in its own database */
static PGconn *owner; /* the migrations' owner, in the test database */
static redisContext *redis;
static char db[64], owner_role[64], app_role[64];
static char *owner_dsn, *app_dsn;
static struct apphost_grants list;

static char *quoted(PGconn *c, const char *ident)
{
	char *q = PQescapeIdentifier(c, ident, strlen(ident));
	cr_assert(q != NULL, "%s", PQerrorMessage(c));
	return q;
}

/* Run one SQL text (no parameters) on c; asserts it succeeded. */
APPHOST_PRINTF(2, 3)
static void exec_sql(PGconn *c, const char *fmt, ...)
{
	char *sql;
	va_list ap;
	va_start(ap, fmt);
	cr_assert(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	PGresult *r = PQexec(c, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK ||
		      PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	free(sql);
}

/* A conninfo for `user` in `dbname` on the superuser's server. */
static char *dsn_for(const char *user, const char *dbname)
{
	char *dsn;
	cr_assert(asprintf(&dsn, "host=%s port=%s dbname=%s user='%s'",
			   PQhost(su), PQport(su), dbname, user) > 0);
	return dsn;
}

static char *path_in_source(const char *rel)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", SOURCE_ROOT, rel) > 0);
	return p;
}

static void load_list(void)
{
	char *path = path_in_source("schema/grants"), err[256] = "";
	char *text = ap_read_file(path);
	cr_assert(text != NULL, "cannot read %s", path);
	cr_assert_eq(apphost_grants_parse(text, &list, err, sizeof(err)), 0,
		     "%s: %s", path, err);
	free(text);
	free(path);
}

/*
 * Run apphost-migrate with APPHOST_POSTGRES_DSN=dsn and `args` (a shell
 * fragment; $ROLE is app_role); returns its stdout (malloc()ed) and its
 * exit status in *rc.
 */
static char *migrate_cmd(const char *dsn, const char *args, int *rc)
{
	char *cmd;
	setenv("APPHOST_POSTGRES_DSN", dsn, 1);
	setenv("ROLE", app_role, 1);
	cr_assert(asprintf(&cmd, "'%s' --schema-dir '%s/schema' %s",
			   getenv("APPHOST_MIGRATE_BIN"), SOURCE_ROOT,
			   args) > 0);
	char *out = ap_capture(cmd, rc);
	free(cmd);
	return out;
}

static void setup(void)
{
	rs_require_servers();
	su = rs_pg();
	redis = rs_redis();
	cr_assert(su && redis, "servers configured but unreachable");
	snprintf(db, sizeof(db), "he_grants_%d", (int)getpid());
	snprintf(owner_role, sizeof(owner_role), "he_owner_%d", (int)getpid());
	snprintf(app_role, sizeof(app_role), "He app \"%d\"", (int)getpid());
	char *qo = quoted(su, owner_role), *qa = quoted(su, app_role);
	char *qd = quoted(su, db);
	exec_sql(su, "CREATE ROLE %s LOGIN", qo);
	exec_sql(su, "CREATE ROLE %s LOGIN", qa);
	exec_sql(su, "CREATE DATABASE %s OWNER %s", qd, qo);
	free(qo);
	free(qa);
	free(qd);

	char *su_db = dsn_for(PQuser(su), db);
	PGconn *c = PQconnectdb(su_db);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	exec_sql(c, "REVOKE ALL ON SCHEMA public FROM PUBLIC");
	PQfinish(c);
	free(su_db);

	owner_dsn = dsn_for(owner_role, db);
	app_dsn = dsn_for(app_role, db);
	int rc;
	free(migrate_cmd(owner_dsn, "", &rc));
	cr_assert_eq(rc, 0, "migrations as %s", owner_role);
	owner = PQconnectdb(owner_dsn);
	cr_assert_eq(PQstatus(owner), CONNECTION_OK, "%s",
		     PQerrorMessage(owner));
	load_list();
}

static th_keys K;
static pid_t pids[2];
static char logs[2][128];

static void teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (pids[i] > 0)
			ap_kill9(pids[i]);
	apphost_grants_free(&list);
	PQfinish(owner);
	owner = NULL;
	if (su != NULL && PQstatus(su) == CONNECTION_OK) {
		char *qd = quoted(su, db), *qo = quoted(su, owner_role);
		char *qa = quoted(su, app_role);
		PQclear(PQexec(su, "SET client_min_messages = warning"));
		char *sql;
		cr_assert(asprintf(&sql,
				   "DROP DATABASE IF EXISTS %s WITH (FORCE); "
				   "DROP ROLE IF EXISTS %s; "
				   "DROP ROLE IF EXISTS %s",
				   qd, qa, qo) > 0);
		PQclear(PQexec(su, sql));
		free(sql);
		free(qd);
		free(qo);
		free(qa);
	}
	PQfinish(su);
	su = NULL;
	if (redis)
		redisFree(redis);
	redis = NULL;
	free(owner_dsn);
	free(app_dsn);
	owner_dsn = app_dsn = NULL;
}

TestSuite(grants, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the list against the migrated catalog ---- */

/* The oid of a listed object in the test database, "" when absent. */
static char *listed_oid(const struct apphost_grant *g)
{
	char *object = apphost_grant_object(g, "public");
	const char *sql = g->kind == APPHOST_GRANT_FUNCTION
			      ? "SELECT coalesce(to_regprocedure($1)::oid::text"
				", '')"
			      : "SELECT coalesce(to_regclass($1)::oid::text, "
				"'')";
	char *oid = th_sql_value(owner, sql, object);
	free(object);
	return oid;
}

/* Whether oid (text) is one of the list's objects of `kind`. */
static bool in_list(int kind, const char *oid)
{
	bool found = false;
	for (size_t i = 0; !found && i < list.n; i++) {
		if (list.v[i].kind != kind)
			continue;
		char *o = listed_oid(&list.v[i]);
		found = strcmp(o, oid) == 0;
		free(o);
	}
	return found;
}

/*
 * Every function the migrations keep from PUBLIC, and every table they
 * create, is in the list (a new one the list lacks is named), and every
 * object the list names exists.
 */
Test(grants, list_matches_what_the_migrations_create)
{
	for (size_t i = 0; i < list.n; i++) {
		if (list.v[i].kind == APPHOST_GRANT_SCHEMA)
			continue;
		char *o = listed_oid(&list.v[i]);
		cr_expect_neq(o[0], '\0',
			      "schema/grants line %u names %s%s%s%s, which "
			      "the migrations do not create",
			      list.v[i].line, list.v[i].name,
			      list.v[i].args ? "(" : "",
			      list.v[i].args ? list.v[i].args : "",
			      list.v[i].args ? ")" : "");
		free(o);
	}

	PGresult *r = PQexec(
	    owner,
	    "SELECT p.oid::text, p.oid::regprocedure::text, 'function' "
	    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
	    "WHERE n.nspname = current_schema() AND NOT EXISTS ("
	    " SELECT 1 FROM aclexplode(coalesce(p.proacl, "
	    " acldefault('f', p.proowner))) a "
	    " WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') "
	    "UNION ALL "
	    "SELECT c.oid::text, c.relname::text, 'table' FROM pg_class c "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
	    "AND c.relname <> 'schema_migrations'");
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQresultErrorMessage(r));
	int functions = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		bool fn = strcmp(PQgetvalue(r, i, 2), "function") == 0;
		functions += fn;
		cr_expect(
		    in_list(fn ? APPHOST_GRANT_FUNCTION : APPHOST_GRANT_TABLE,
			    PQgetvalue(r, i, 0)),
		    "the migrations create %s %s (%s), which "
		    "schema/grants does not name: add a line for it",
		    PQgetvalue(r, i, 2), PQgetvalue(r, i, 1),
		    fn ? "revoked from PUBLIC" : "a table");
	}
	cr_expect_gt(functions, 0, "the migrations revoke functions");
	PQclear(r);
}

/* ---- the list against the plugin's SQL ---- */

/*
 * The string literals of a C file, adjacent ones joined (a statement is
 * often split over lines), each followed by '\n'. Comments and character
 * constants are skipped.
 */
static char *string_literals(const char *c)
{
	size_t cap = strlen(c) + 1, n = 0;
	char *out = malloc(cap);
	bool open = false; /* a literal run not yet ended with '\n' */
	for (const char *p = c; *p;) {
		if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");
			p = e ? e + 2 : p + strlen(p);
		} else if (p[0] == '/' && p[1] == '/') {
			p += strcspn(p, "\n");
		} else if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1])
					p++;
			p += *p != '\0';
		} else if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				out[n++] = *p;
			}
			p += *p != '\0';
			open = true;
		} else {
			if (open && !(*p == ' ' || *p == '\t' || *p == '\n')) {
				out[n++] = '\n';
				open = false;
			}
			p++;
		}
	}
	out[n] = '\0';
	return out;
}

static bool word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/* Arguments of the call whose '(' is at p: its $N parameters. */
static int call_args(const char *p)
{
	int depth = 0, n = 0;
	for (; *p && *p != '\n'; p++) {
		depth += *p == '(';
		depth -= *p == ')';
		n += *p == '$';
		if (depth == 0)
			break;
	}
	return n;
}

static int list_args(const struct apphost_grant *g)
{
	int n = g->args[0] != '\0';
	for (const char *a = g->args; *a; a++)
		n += *a == ',';
	return n;
}

/* Check the SQL calls and table names in one file's literals. */
static int check_source(const char *path)
{
	char *text = ap_read_file(path), *lits;
	cr_assert(text != NULL, "cannot read %s", path);
	lits = string_literals(text);
	int calls = 0;
	for (char *p = lits; (p = strstr(p, "health_events_")) != NULL; p++) {
		if (p > lits && word_char(p[-1]))
			continue;
		size_t len = 0;
		while (word_char(p[len]))
			len++;
		const char *after = p + len;
		while (*after == ' ')
			after++;
		if (*after != '(')
			continue; /* a metric, a message, not a call */
		int nargs = call_args(after);
		bool found = false;
		for (size_t i = 0; i < list.n && !found; i++)
			found = list.v[i].kind == APPHOST_GRANT_FUNCTION &&
				strlen(list.v[i].name) == len &&
				strncmp(list.v[i].name, p, len) == 0 &&
				list_args(&list.v[i]) == nargs;
		cr_expect(found,
			  "%s calls %.*s with %d arguments; schema/grants "
			  "names no such function",
			  path, (int)len, p, nargs);
		calls++;
	}
	static const char *const verbs[] = {"FROM ", "UPDATE ", "INTO ",
					    "JOIN "};
	for (size_t v = 0; v < sizeof(verbs) / sizeof(*verbs); v++)
		for (char *p = lits; (p = strstr(p, verbs[v])) != NULL; p++) {
			const char *t = p + strlen(verbs[v]);
			size_t len = 0;
			if (p > lits && word_char(p[-1]))
				continue;
			while (word_char(t[len]))
				len++;
			if (len == 0 || t[len] == '(')
				continue;
			bool found = false;
			for (size_t i = 0; i < list.n && !found; i++)
				found = list.v[i].kind == APPHOST_GRANT_TABLE &&
					strlen(list.v[i].name) == len &&
					strncmp(list.v[i].name, t, len) == 0;
			cr_expect(found,
				  "%s's SQL names table %.*s; schema/grants "
				  "does not",
				  path, (int)len, t);
		}
	free(lits);
	free(text);
	return calls;
}

Test(grants, plugin_sql_calls_only_listed_functions)
{
	char *dir = path_in_source("plugin/health_events");
	DIR *d = opendir(dir);
	cr_assert(d != NULL, "%s", dir);
	int calls = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		size_t n = strlen(e->d_name);
		if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
			continue;
		char *path;
		cr_assert(asprintf(&path, "%s/%s", dir, e->d_name) > 0);
		calls += check_source(path);
		free(path);
	}
	closedir(d);
	free(dir);
	cr_expect_geq(calls, 3, "found the plugin's calls (%d)", calls);
}

/* ---- --grant ---- */

Test(grants, grant_needs_a_migrated_database)
{
	char *qd, *empty, *sql;
	int rc;
	cr_assert(asprintf(&empty, "%s_empty", db) > 0);
	qd = quoted(su, empty);
	cr_assert(asprintf(&sql, "CREATE DATABASE %s", qd) > 0);
	PQclear(PQexec(su, sql));
	free(sql);
	char *dsn = dsn_for(PQuser(su), empty);
	char *out = migrate_cmd(dsn, "--grant \"$ROLE\" 2>&1", &rc);
	cr_expect_neq(rc, 0, "grants printed for an empty database");
	cr_expect(strstr(out, "has no \"public\".\"health_events_apply\"") !=
		      NULL,
		  "names what is missing: %s", out);
	cr_expect(strstr(out, "GRANT") == NULL, "printed grants: %s", out);
	cr_assert(asprintf(&sql, "DROP DATABASE %s WITH (FORCE)", qd) > 0);
	PQclear(PQexec(su, sql));
	free(sql);
	free(out);
	free(dsn);
	free(qd);
	free(empty);
}

/* ---- the application role, given exactly the printed grants ---- */

/* Apply what apphost-migrate --grant prints for the app role, as owner. */
static void grant_printed(void)
{
	int rc;
	char *grants = migrate_cmd(owner_dsn, "--grant \"$ROLE\"", &rc);
	cr_assert_eq(rc, 0, "apphost-migrate --grant: %s", grants);
	cr_assert(strstr(grants, "GRANT USAGE ON SCHEMA \"public\"") == grants,
		  "USAGE first: %s", grants);
	exec_sql(owner, "%s", grants);
	free(grants);
}

static void spawn(int i)
{
	char id[64], dsn[512];
	snprintf(id, sizeof(id), "HEALTH_EVENTS_INSTANCE_ID=grants-%d", i);
	snprintf(dsn, sizeof(dsn), "APPHOST_POSTGRES_DSN=%s", app_dsn);
	snprintf(logs[i], sizeof(logs[i]), "/tmp/apphost-grants-%d-%d.log",
		 (int)getpid(), i);
	unlink(logs[i]);
	const char *const env[] = {
	    id, dsn, "APPHOST_HTTP_ADDR=", "APPHOST_LOG_FORMAT=json", NULL};
	pids[i] = ap_spawn_he(&K, logs[i], env);
}

Test(grants, printed_grants_are_enough_to_lead_fail_over_and_stop)
{
	grant_printed();
	th_keys_init(&K, "grants");
	ap_two_instances_fail_over(&K, redis, owner, "grants", spawn, pids,
				   logs);
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(ap_log_count(logs[i], "permission denied", NULL),
			     0, "%s mentions a refused permission", logs[i]);
		cr_expect_eq(ap_log_count(logs[i], "\"level\":\"error\"", NULL),
			     0, "%s has errors", logs[i]);
	}
	char *released = th_sql_value(
	    owner,
	    "SELECT (expires_at <= now())::text FROM health_events_leader "
	    "WHERE name = $1",
	    K.prefix);
	cr_expect_str_eq(released, "true", "the stop released the lease");
	free(released);
}

/* docs/operations.md and health_events(7) show exactly what it prints. */
Test(grants, docs_show_the_printed_grants)
{
	int rc;
	char *out = migrate_cmd(owner_dsn, "--grant apphost", &rc);
	cr_assert_eq(rc, 0, "%s", out);
	static const char *const docs[] = {"docs/operations.md",
					   "dist/health_events.7.scd"};
	for (size_t i = 0; i < sizeof(docs) / sizeof(*docs); i++) {
		char *path = path_in_source(docs[i]);
		char *text = ap_read_file(path);
		cr_assert(text != NULL, "%s", path);
		cr_expect(strstr(text, out) != NULL,
			  "%s does not show what --grant apphost prints:\n%s",
			  path, out);
		free(text);
		free(path);
	}
	free(out);
}

/*
 * A grant missing from the role is named as a permission refusal (not an
 * I/O error), retried without dead-lettering the entry, and clears once
 * granted, without a restart.
 */
Test(grants, a_missing_grant_is_named_retried_and_clears_when_granted)
{
	grant_printed();
	char *qa = quoted(owner, app_role);
	exec_sql(owner,
		 "REVOKE EXECUTE ON FUNCTION health_events_apply_batch("
		 "text[], text[], text[], text[]) FROM %s",
		 qa);

	th_keys_init(&K, "grants");
	char g1[160];
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	th_insert_game(owner, g1, "running", 1);
	spawn(0);
	free(ap_wait_log(logs[0], "leadership acquired", 1, pids[0], 20000));
	char *id = th_xadd(redis, K.stream, "game_id", g1, "event_type",
			   "container_oom", NULL);
	char *line =
	    ap_wait_log(logs[0], "dependency failing", 1, pids[0], 20000);
	/* code= is written unquoted: JSON keeps its first word */
	cr_expect(strstr(line, "\"code\":\"permission\"") != NULL,
		  "the refusal is named: %s", line);
	cr_expect(strstr(line, "health_events_apply_batch") != NULL, "%s",
		  line);
	free(line);
	cr_expect_eq(th_xlen(redis, K.dead), 0, "dead-lettered");

	exec_sql(owner,
		 "GRANT EXECUTE ON FUNCTION health_events_apply_batch("
		 "text[], text[], text[], text[]) TO %s",
		 qa);
	cr_assert(th_wait_offset(redis, K.offset_key, id, 30000),
		  "not committed once granted (log %s)", logs[0]);
	char *row = th_row(owner, g1);
	cr_expect_str_eq(row, "engine_unreachable/oom/1");
	free(row);
	cr_expect_eq(th_xlen(redis, K.dead), 0);
	free(id);
	free(qa);
}

/*
 * apphost --check --connect as the application role: passes with the
 * printed grants, fails naming what one revoked lacks, and writes
 * nothing either way (no lease row, no fence, no offset).
 */
static char *check_connect(int *rc)
{
	char *cmd;
	setenv("APPHOST_POSTGRES_DSN", app_dsn, 1);
	setenv("APPHOST_COMPONENTS", getenv("HE_SO"), 1);
	setenv("HEALTH_EVENTS_OFFSET_LABEL", K.prefix, 1);
	setenv("HEALTH_EVENTS_STREAM", K.stream, 1);
	setenv("APPHOST_HTTP_ADDR", "", 1);
	cr_assert(asprintf(&cmd, "'%s' --check --connect 2>&1",
			   getenv("APPHOST_BIN")) > 0);
	char *out = ap_capture(cmd, rc);
	free(cmd);
	return out;
}

Test(grants, check_connect_names_a_missing_grant_and_writes_nothing)
{
	grant_printed();
	th_keys_init(&K, "grants");

	int rc;
	char *out = check_connect(&rc);
	cr_expect_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "component check passed name=health_events") !=
		      NULL,
		  "%s", out);
	free(out);

	char *qa = quoted(owner, app_role);
	exec_sql(owner, "REVOKE UPDATE ON TABLE runtime_records FROM %s", qa);
	free(qa);
	out = check_connect(&rc);
	cr_expect_neq(rc, 0, "%s", out);
	cr_expect(strstr(out, "UPDATE on table runtime_records") != NULL, "%s",
		  out);
	free(out);

	char *rows = th_sql_value(owner,
				  "SELECT count(*)::text FROM "
				  "health_events_leader WHERE name = $1",
				  K.prefix);
	cr_expect_str_eq(rows, "0", "a lease row was written");
	free(rows);
	char fence[200];
	snprintf(fence, sizeof(fence), "%s:fence", K.offset_key);
	cr_expect_eq(th_xlen(redis, K.stream), 0);
	char *v = th_get(redis, fence);
	cr_expect_null(v, "the fence was raised");
	free(v);
	v = th_get(redis, K.offset_key);
	cr_expect_null(v, "an offset was written");
	free(v);
}

/*
 * A standby whose lease calls are refused for a privilege says so: every
 * "dependency failing" line names a permission, none an unreachable
 * server.
 */
Test(grants, a_refused_lease_call_is_a_permission_on_the_standby)
{
	grant_printed();
	char *qa = quoted(owner, app_role);
	exec_sql(owner,
		 "REVOKE EXECUTE ON FUNCTION health_events_lease(text, text, "
		 "text, integer, bigint) FROM %s",
		 qa);
	free(qa);
	th_keys_init(&K, "grants");
	spawn(0);
	free(ap_wait_log(logs[0], "lease calls failing", 1, pids[0], 20000));
	free(ap_wait_log(logs[0], "dependency failing", 1, pids[0], 20000));
	cr_expect_eq(ap_log_count(logs[0], "dependency failing",
				  "\"code\":\"connection", NULL),
		     0, "reported as a connection failure (log %s)", logs[0]);
	cr_expect_eq(ap_log_count(logs[0], "lease calls failing",
				  "\"code\":\"I/O", NULL),
		     0, "reported as I/O (log %s)", logs[0]);
}
