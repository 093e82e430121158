/*
 * migrate.c -- apphost-migrate: apply the schema's numbered migrations
 * (NNN_name.sql) not yet recorded in schema_migrations, in order, each in
 * its own transaction, to the database APPHOST_POSTGRES_DSN names.
 *
 * The DSN comes from the environment (or the apphost --config file),
 * never from the command line, where every local user could read it
 * (/proc/PID/cmdline). It goes to libpq as apphost passes it, so a DSN
 * that works for apphost works here (URI, conninfo, several hosts).
 *
 * With --grant ROLE it applies nothing: it prints the GRANT statements
 * the list schema/grants names, for ROLE, qualified with the schema the
 * connection's search path finds first (where the migrations ran), after
 * checking that every object of the list exists there.
 *
 * Each file runs as one simple-query string inside BEGIN ... COMMIT,
 * after taking an advisory lock and re-checking schema_migrations, so two
 * concurrent runs apply a file once. The files are plain SQL: no psql
 * meta-commands.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "config.h"
#include "dsn.h"
#include "grants.h"

#ifndef APPHOST_VERSION
#define APPHOST_VERSION "0.0.0"
#endif
#ifndef APPHOST_SCHEMA_DIR
#define APPHOST_SCHEMA_DIR "schema"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: apphost-migrate [--config FILE] [--schema-dir DIR]\n"
	    "       apphost-migrate [--config FILE] [--schema-dir DIR] "
	    "--grant ROLE\n"
	    "       apphost-migrate --help | --version\n"
	    "\n"
	    "Applies the NNN_*.sql files of the schema directory that are\n"
	    "not yet recorded in the table schema_migrations, in order,\n"
	    "each in its own transaction. A second run applies nothing.\n"
	    "\n"
	    "The database is APPHOST_POSTGRES_DSN (libpq URI or conninfo;\n"
	    "empty or unset: libpq's defaults and PG* variables), from the\n"
	    "environment or the --config file (the environment wins), never\n"
	    "from the command line.\n"
	    "\n"
	    "Options:\n"
	    "  -c, --config FILE     KEY=VALUE lines, as apphost --config\n"
	    "  -s, --schema-dir DIR  the migrations (default: "
	    "$APPHOST_SCHEMA_DIR,\n"
	    "                        else %s)\n"
	    "  -g, --grant ROLE      apply nothing; print the GRANT "
	    "statements\n"
	    "                        that give ROLE what apphost needs "
	    "(DIR/grants),\n"
	    "                        for the schema the migrations ran in; "
	    "run it\n"
	    "                        with the owner's DSN, pipe it to psql\n"
	    "  -h, --help            this text\n"
	    "  -V, --version         the version\n"
	    "\n"
	    "Exit status: 0 applied or nothing to apply (or the grants\n"
	    "printed), 1 failure (a failed file is rolled back whole), 2\n"
	    "usage error.\n",
	    APPHOST_SCHEMA_DIR);
}

APPHOST_PRINTF(1, 2)
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "apphost-migrate: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* libpq's message without its trailing newline. */
static const char *pq_err(PGconn *c)
{
	static char buf[1024];
	size_t n;

	snprintf(buf, sizeof(buf), "%s", PQerrorMessage(c));
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

/* Run one command; true when it succeeded (tuples or not). */
static bool exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	PQclear(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static bool is_migration(const char *name)
{
	size_t n = strlen(name);

	return n > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' &&
	       name[1] <= '9' && name[2] >= '0' && name[2] <= '9' &&
	       name[3] == '_' && strcmp(name + n - 4, ".sql") == 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The migration file names in `dir`, sorted; NULL on error (reported). */
static char **list_files(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t n = 0;

	if (d == NULL) {
		fail("cannot read the schema directory %s: %s", dir,
		     strerror(errno));
		return NULL;
	}
	while ((e = readdir(d)) != NULL) {
		char **nv;

		if (!is_migration(e->d_name))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (nv == NULL || (nv[n] = strdup(e->d_name)) == NULL) {
			free(nv != NULL ? nv : v);
			closedir(d);
			fail("out of memory");
			return NULL;
		}
		v = nv;
		n++;
	}
	closedir(d);
	if (n == 0) {
		fail("no migrations (NNN_name.sql) in %s", dir);
		free(v);
		return NULL;
	}
	qsort(v, n, sizeof(*v), by_name);
	/* Two files with one number would apply in an order nobody chose. */
	for (size_t i = 1; i < n; i++) {
		if (strncmp(v[i - 1], v[i], 3) == 0) {
			fail("more than one migration numbered %.3s: %s", v[i],
			     dir);
			for (size_t j = 0; j < n; j++)
				free(v[j]);
			free(v);
			return NULL;
		}
	}
	*count = n;
	return v;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, got;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
	} while (got > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/*
 * Apply one file unless it is recorded. Returns 1 applied, 0 already
 * applied (by a concurrent run), -1 failed (reported, rolled back).
 */
static int apply_one(PGconn *c, const char *dir, const char *name)
{
	char path[4096], version[256];
	const char *params[1] = {version};
	PGresult *r;
	char *sql;
	bool done;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(version, sizeof(version), "%.*s", (int)(strlen(name) - 4),
		 name);
	sql = read_file(path);
	if (sql == NULL) {
		fail("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (!exec_ok(c, "BEGIN") ||
	    !exec_ok(c, "SELECT pg_advisory_xact_lock("
			"hashtext('apphost.schema_migrations'))")) {
		fail("%s: cannot lock schema_migrations: %s", version,
		     pq_err(c));
		free(sql);
		return -1;
	}
	r = PQexecParams(c,
			 "SELECT 1 FROM schema_migrations WHERE version = $1",
			 1, NULL, params, NULL, NULL, 0);
	done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		fail("%s: cannot read schema_migrations: %s", version,
		     pq_err(c));
		free(sql);
		return -1;
	}
	PQclear(r);
	if (done) {
		(void)exec_ok(c, "ROLLBACK");
		free(sql);
		return 0;
	}
	if (!exec_ok(c, sql)) {
		fail("migration %s failed; nothing of it was applied: %s",
		     version, pq_err(c));
		(void)exec_ok(c, "ROLLBACK");
		free(sql);
		return -1;
	}
	free(sql);
	r = PQexecParams(c,
			 "INSERT INTO schema_migrations (version) VALUES ($1)",
			 1, NULL, params, NULL, NULL, 0);
	done = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!done || !exec_ok(c, "COMMIT")) {
		fail("migration %s failed at commit; nothing of it was "
		     "applied: %s",
		     version, pq_err(c));
		(void)exec_ok(c, "ROLLBACK");
		return -1;
	}
	return 1;
}

/* A connection to dsn, or NULL (reported). */
static PGconn *connect_db(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);

	if (PQstatus(c) != CONNECTION_OK) {
		/* libpq's own text quotes pieces of the DSN: never shown */
		char *shown = NULL, why[128];

		(void)apphost_dsn_redact(dsn, &shown, NULL, 0);
		apphost_dsn_error_summary(PQerrorMessage(c), why, sizeof(why));
		fail("cannot connect to PostgreSQL "
		     "(APPHOST_POSTGRES_DSN=\"%s\"): "
		     "%s",
		     shown != NULL ? shown : APPHOST_DSN_UNPARSABLE, why);
		free(shown);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/*
 * Whether `object` (SQL, schema-qualified) exists: to_regprocedure,
 * to_regclass or to_regnamespace by its kind. -1 when the query failed
 * (reported).
 */
static int object_exists(PGconn *c, const struct apphost_grant *g,
			 const char *object)
{
	static const char *const sql[] = {
	    [APPHOST_GRANT_SCHEMA] = "SELECT to_regnamespace($1) IS NOT NULL",
	    [APPHOST_GRANT_FUNCTION] = "SELECT to_regprocedure($1) IS NOT NULL",
	    [APPHOST_GRANT_TABLE] = "SELECT to_regclass($1) IS NOT NULL",
	};
	const char *params[1] = {object};
	PGresult *r =
	    PQexecParams(c, sql[g->kind], 1, NULL, params, NULL, NULL, 0);
	int rc = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		rc = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	else
		fail("cannot look up %s: %s", object, pq_err(c));
	PQclear(r);
	return rc;
}

/*
 * --grant ROLE: the list's GRANT statements on stdout, for the schema
 * the connection finds first, once every object is known to exist there
 * (a list ahead of the database, or the wrong database, is an error
 * rather than statements psql would half apply).
 */
static int print_grants(const char *dsn, const char *dir, const char *role)
{
	struct apphost_grants g = {0};
	char path[4096], err[256];
	char *text, *schema = NULL, *sql = NULL;
	PGconn *c = NULL;
	PGresult *r;
	int status = EXIT_FAIL, rc;
	bool missing = false;

	snprintf(path, sizeof(path), "%s/grants", dir);
	text = read_file(path);
	if (text == NULL) {
		fail("cannot read %s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	rc = apphost_grants_parse(text, &g, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fail("%s: %s", path,
		     rc == APPHOST_ENOMEM ? "out of memory" : err);
		return EXIT_FAIL;
	}
	c = connect_db(dsn);
	if (c == NULL)
		goto out;
	r = PQexec(c, "SELECT current_schema()");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    !PQgetisnull(r, 0, 0))
		schema = strdup(PQgetvalue(r, 0, 0));
	else
		fail("no current schema: the search path names no schema "
		     "that exists%s%s",
		     PQresultStatus(r) == PGRES_TUPLES_OK ? "" : ": ",
		     PQresultStatus(r) == PGRES_TUPLES_OK ? "" : pq_err(c));
	PQclear(r);
	if (schema == NULL)
		goto out;
	for (size_t i = 0; i < g.n; i++) {
		char *object = apphost_grant_object(&g.v[i], schema);

		rc = object != NULL ? object_exists(c, &g.v[i], object) : -1;
		if (rc == 0) {
			fail("the database has no %s (%s line %u): run the "
			     "migrations first, with this DSN",
			     object, path, g.v[i].line);
			missing = true;
		}
		free(object);
		if (rc < 0)
			goto out;
	}
	if (missing)
		goto out;
	sql = apphost_grants_sql(&g, schema, role);
	if (sql == NULL) {
		fail("out of memory");
		goto out;
	}
	fputs(sql, stdout);
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	free(sql);
	free(schema);
	PQfinish(c);
	apphost_grants_free(&g);
	return status;
}

static int migrate(const char *dsn, const char *dir)
{
	PGconn *c;
	char **files;
	size_t n = 0, applied = 0;
	int status = EXIT_FAIL;

	files = list_files(dir, &n);
	if (files == NULL)
		return EXIT_FAIL;
	c = connect_db(dsn);
	if (c == NULL)
		goto out;
	if (!exec_ok(c, "SET client_min_messages = warning") ||
	    !exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			" version text PRIMARY KEY,"
			" applied_at timestamptz NOT NULL DEFAULT now())")) {
		fail("cannot create schema_migrations: %s", pq_err(c));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = apply_one(c, dir, files[i]);

		if (rc < 0)
			goto out;
		if (rc > 0) {
			printf("applied %.*s\n", (int)(strlen(files[i]) - 4),
			       files[i]);
			applied++;
		}
	}
	if (applied == 0)
		printf("nothing to apply\n");
	status = EXIT_OK;
out:
	PQfinish(c);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"schema-dir", required_argument, NULL, 's'},
	    {"grant", required_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *dir = NULL, *dsn, *role = NULL;
	struct apphost_config *cfg = NULL;
	char err[1024];
	int opt, status;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:s:g:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 's': dir = optarg; break;
		case 'g': role = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V':
			printf("apphost-migrate %s\n", APPHOST_VERSION);
			return EXIT_OK;
		case ':':
			fprintf(stderr,
				"apphost-migrate: %s needs an argument\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		default:
			/* Named, not its value: --dsn=URI holds a password. */
			if (optopt != 0)
				fprintf(stderr,
					"apphost-migrate: unknown option "
					"'-%c'\n",
					optopt);
			else
				fprintf(stderr,
					"apphost-migrate: unknown option "
					"'%.*s'\n",
					(int)strcspn(argv[optind - 1], "="),
					argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		/* Not echoed: it may be a DSN with a password. */
		fprintf(stderr,
			"apphost-migrate: unexpected argument; the database "
			"is read from APPHOST_POSTGRES_DSN, never from the "
			"command line\n");
		return EXIT_USAGE;
	}
	if (apphost_config_new(&cfg) < 0) {
		fail("out of memory");
		return EXIT_FAIL;
	}
	if (config_path != NULL &&
	    apphost_config_load_file(cfg, config_path, err, sizeof(err), NULL) <
		0) {
		fail("cannot read configuration: %s", err);
		apphost_config_free(cfg);
		return EXIT_FAIL;
	}
	if (dir == NULL || dir[0] == '\0')
		dir = getenv("APPHOST_SCHEMA_DIR");
	if (dir == NULL || dir[0] == '\0')
		dir = APPHOST_SCHEMA_DIR;
	dsn = apphost_config_get(cfg, "APPHOST_POSTGRES_DSN");
	if (role != NULL && role[0] == '\0') {
		fail("--grant needs a role name");
		apphost_config_free(cfg);
		return EXIT_USAGE;
	}
	status = role != NULL ? print_grants(dsn != NULL ? dsn : "", dir, role)
			      : migrate(dsn != NULL ? dsn : "", dir);
	apphost_config_free(cfg);
	return status;
}
