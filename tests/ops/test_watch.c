/*
 * Suite ops, with servers: what an operator watches. A live /metrics of
 * a leader and a standby against the metrics table of docs/operations.md
 * (none undocumented, none documented and missing, types equal) and
 * through `promtool check metrics`; health_events_lag_seconds while a
 * private PostgreSQL is stopped under load, and after the catch-up.
 */
#include "apphost_proc.h"
#include "ops.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static th_keys K;
static char logfile[256];

TestSuite(watch, .timeout = 240);

/* ---- the metric families of a scrape and of the docs ----------------------
 */

enum { MAX_FAMILIES = 128 };

typedef struct families {
	size_t n;
	struct {
		char name[128], type[16];
	} f[MAX_FAMILIES];
} families;

/* Add name/type unless present; a second type for a name fails. */
static void fam_add(families *fs, const char *name, size_t nlen,
		    const char *type, size_t tlen, const char *where)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strlen(fs->f[i].name) == nlen &&
		    !strncmp(fs->f[i].name, name, nlen)) {
			cr_expect(strlen(fs->f[i].type) == tlen &&
				      !strncmp(fs->f[i].type, type, tlen),
				  "%s: %.*s is %s and %.*s", where, (int)nlen,
				  name, fs->f[i].type, (int)tlen, type);
			return;
		}
	cr_assert_lt(fs->n, MAX_FAMILIES);
	snprintf(fs->f[fs->n].name, sizeof(fs->f[fs->n].name), "%.*s",
		 (int)nlen, name);
	snprintf(fs->f[fs->n].type, sizeof(fs->f[fs->n].type), "%.*s",
		 (int)tlen, type);
	fs->n++;
}

static const char *fam_type(const families *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->f[i].name, name))
			return fs->f[i].type;
	return NULL;
}

/* "# TYPE <name> <type>" lines of an exposition. */
static void scrape_families(families *fs, const char *text)
{
	for (const char *l = text; l && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "# TYPE ", 7))
			continue;
		const char *name = l + 7, *sp = strchr(name, ' ');
		cr_assert_not_null(sp);
		fam_add(fs, name, (size_t)(sp - name), sp + 1,
			strcspn(sp + 1, "\n"), "scrape");
	}
}

/* The rows "| `name{labels}` | type | ... |" of the section "## Metrics"
 * of docs/operations.md, up to the next heading. */
static void doc_families(families *fs)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/docs/operations.md",
		 getenv("APPHOST_SRC"));
	char *doc = ap_read_file(path);
	cr_assert_not_null(doc, "%s", path);
	char *sec = strstr(doc, "\n## Metrics\n");
	cr_assert_not_null(sec, "no ## Metrics in %s", path);
	for (char *l = strchr(sec + 1, '\n') + 1; l && *l && *l != '#';
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "| `", 3))
			continue;
		const char *name = l + 3;
		size_t nlen = strcspn(name, "{`");
		const char *cell = strchr(name + nlen, '|');
		cr_assert_not_null(cell, "row: %.60s", l);
		cell++;
		while (*cell == ' ')
			cell++;
		fam_add(fs, name, nlen, cell, strcspn(cell, " |"),
			"docs/operations.md");
	}
	free(doc);
	cr_assert_gt(fs->n, 10, "the table was found and read");
}

static char *scrape(int port)
{
	ops_resp r = ops_http(port, "/metrics", NULL);
	cr_assert_eq(r.status, 200);
	free(r.headers);
	return r.body;
}

/* promtool check metrics on a scrape: no complaint at all. */
static void promtool_clean(const char *text, const char *who)
{
	char in[128], out[160];
	snprintf(in, sizeof(in), "/tmp/ops-scrape-%d-%s", (int)getpid(), who);
	snprintf(out, sizeof(out), "%s.out", in);
	FILE *f = fopen(in, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	int rc = ops_sh("promtool check metrics <'%s' >'%s' 2>&1", in, out);
	char *said = ap_read_file(out);
	cr_expect(rc == 0 && said && !said[0],
		  "promtool on the %s: exit %d\n%s", who, rc, said ? said : "");
	free(said);
	unlink(in);
	unlink(out);
}

static void env_for(char (*buf)[600], const char **env, int port,
		    const char *redis_url, const char *pg_dsn,
		    const char *lease_ms)
{
	int n = 0;
	snprintf(buf[n++], 600, "APPHOST_HTTP_ADDR=127.0.0.1:%d", port);
	snprintf(buf[n++], 600, "APPHOST_REDIS_URL=%s", redis_url);
	snprintf(buf[n++], 600, "APPHOST_POSTGRES_DSN=%s", pg_dsn);
	if (lease_ms)
		snprintf(buf[n++], 600, "HEALTH_EVENTS_LEASE_MS=%s", lease_ms);
	for (int i = 0; i < n; i++)
		env[i] = buf[i];
	env[n] = NULL;
}

Test(watch, the_metrics_table_documents_every_family_of_a_live_scrape)
{
	redisContext *redis;
	PGconn *pg;
	rs_connect(&redis, &pg);
	cr_assert_eq(ops_sh("command -v promtool >/dev/null"), 0,
		     "promtool (Debian: prometheus, scripts/deps)");
	th_keys_init(&K, "watch");
	snprintf(logfile, sizeof(logfile), "/tmp/apphost-watch-%d.log",
		 (int)getpid());
	char buf[2][5][600], log2[300], g1[160], g2[160];
	const char *env[2][6];
	int port[2] = {ops_free_port(), ops_free_port()};
	pid_t pid[2];
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	snprintf(g2, sizeof(g2), "%s:missing", K.prefix);
	th_insert_game(pg, g1, "running", 1);
	for (int i = 0; i < 2; i++)
		env_for(buf[i], env[i], port[i], getenv("APPHOST_REDIS_URL"),
			getenv("APPHOST_POSTGRES_DSN"), NULL);
	pid[0] = ap_spawn_he(&K, logfile, env[0]);
	cr_assert(ops_wait_status(port[0], "/readyz", 200, 20000),
		  "leader ready (log: %s)", logfile);
	snprintf(log2, sizeof(log2), "%s.2", logfile);
	pid[1] = ap_spawn_he(&K, log2, env[1]);
	cr_assert(ops_wait_status(port[1], "/readyz", 200, 20000),
		  "standby ready (log: %s)", log2);

	/* traffic, so that the series that appear on first use exist */
	free(th_xadd(redis, K.stream, "game_id", g1, "event_type",
		     "container_oom", NULL));
	free(th_xadd(redis, K.stream, "game_id", g2, "event_type",
		     "probe_failed", NULL));
	char *last =
	    th_xadd(redis, K.stream, "event_type", "container_oom", NULL);
	cr_assert(th_wait_offset(redis, K.offset_key, last, 20000),
		  "committed (log: %s)", logfile);
	free(last);

	families live = {0}, doc = {0};
	const char *who[2] = {"leader", "standby"};
	for (int i = 0; i < 2; i++) {
		char *text = scrape(port[i]);
		scrape_families(&live, text);
		promtool_clean(text, who[i]);
		free(text);
	}
	doc_families(&doc);
	for (size_t i = 0; i < live.n; i++) {
		const char *t = fam_type(&doc, live.f[i].name);
		cr_expect_not_null(t, "%s (%s) is not in docs/operations.md",
				   live.f[i].name, live.f[i].type);
		if (t)
			cr_expect_str_eq(t, live.f[i].type,
					 "%s: docs say %s, /metrics %s",
					 live.f[i].name, t, live.f[i].type);
	}
	for (size_t i = 0; i < doc.n; i++)
		cr_expect_not_null(fam_type(&live, doc.f[i].name),
				   "%s is documented but not on /metrics",
				   doc.f[i].name);
	for (int i = 0; i < 2; i++)
		cr_expect_eq(ap_terminate(pid[i]), 0);
	rs_disconnect(&redis, &pg);
}

/* ---- lag in seconds across a PostgreSQL outage -----------------------------
 */

static ops_private priv;

static void stop_private(void)
{
	ops_private_stop(&priv);
}

static double metric(int port, const char *series)
{
	char *text = scrape(port);
	double v = ops_sample(text, series);
	free(text);
	return v;
}

Test(watch, lag_seconds_rises_while_postgres_is_stopped, .fini = stop_private)
{
	rs_require_servers();
	ops_private_start(&priv, "lag");
	th_keys_init(&K, "watchlag");
	snprintf(logfile, sizeof(logfile), "/tmp/apphost-watchlag-%d.log",
		 (int)getpid());
	unsigned rport = 0;
	cr_assert_eq(sscanf(priv.redis_url, "redis://127.0.0.1:%u", &rport), 1,
		     "%s", priv.redis_url);
	redisContext *redis = redisConnect("127.0.0.1", (int)rport);
	cr_assert(redis && !redis->err);
	char buf[5][600], game[160];
	const char *env[6];
	int port = ops_free_port();
	/* a lease long enough that the leader keeps consuming (and so
	 * exporting its lag) through a few seconds without PostgreSQL */
	env_for(buf, env, port, priv.redis_url, priv.pg_dsn, "20000");
	snprintf(game, sizeof(game), "%s:g", K.prefix);
	pid_t pid = ap_spawn_he(&K, logfile, env);
	cr_assert(ops_wait_status(port, "/readyz", 200, 20000),
		  "ready (log: %s)", logfile);
	free(ap_wait_log(logfile, "leadership acquired", 1, pid, 20000));
	char *last = th_xadd(redis, K.stream, "game_id", game, "event_type",
			     "probe_failed", NULL);
	cr_assert(th_wait_offset(redis, K.offset_key, last, 20000));
	free(last);
	cr_expect_eq(metric(port, "health_events_lag_seconds"), 0, "caught up");

	ops_private_do(&priv, "stop-postgres");
	/* under load: entries keep coming while nothing can be applied */
	double lag = 0, t0 = th_now_ms();
	while (lag < 3 && th_now_ms() - t0 < 20000) {
		free(th_xadd(redis, K.stream, "game_id", game, "event_type",
			     "probe_failed", NULL));
		usleep(200 * 1000);
		lag = metric(port, "health_events_lag_seconds");
	}
	cr_expect_geq(lag, 3, "the lag rises while held up (log: %s)", logfile);
	cr_expect_eq(metric(port, "health_events_leader"), 1,
		     "still the leader, held up");
	last = th_xadd(redis, K.stream, "game_id", game, "event_type",
		       "probe_failed", NULL);
	ops_private_do(&priv, "start-postgres");
	cr_expect(th_wait_offset(redis, K.offset_key, last, 30000),
		  "caught up after PostgreSQL is back (log: %s)", logfile);
	free(last);
	for (int i = 0; i < 100 && metric(port, "health_events_lag_seconds");
	     i++)
		usleep(100 * 1000);
	cr_expect_eq(metric(port, "health_events_lag_seconds"), 0,
		     "0 once caught up");
	/* the entries held up were committed old: past the 1 s bucket */
	double n = metric(port, "health_events_event_age_seconds_count");
	double fast = metric(port, "health_events_event_age_seconds_bucket"
				   "{le=\"1\"}");
	cr_expect_gt(n, fast, "ages: %g of %g within 1 s", fast, n);
	cr_expect_eq(ap_terminate(pid), 0, "SIGTERM exits 0 (log: %s)",
		     logfile);
	redisFree(redis);
}
