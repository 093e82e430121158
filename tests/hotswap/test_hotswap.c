/*
 * Suite hotswap: apphost with APPHOST_HOT_SWAP=1 as a subprocess, against
 * the real servers, while the test replaces its component file the ways
 * builds do: a temp file renamed over it (linkers, install), an in-place
 * rewrite (cp), removal and re-creation, and SIGHUP.
 *
 *   - under a steady load over 100 games no entry is skipped: rows equal a
 *     model computed from the stream, every snapshot the model publishes
 *     is there (at most one extra per game per swap), Lobby's last
 *     snapshot equals the row, the offset ends at the last entry;
 *   - broken replacements (no magic, wrong ABI, init failing, truncated,
 *     not ELF, missing) leave the running build serving, and the log says
 *     why; one whose start fails gets the previous build restarted;
 *   - 50 swaps in a row keep threads, fds and mapped copies bounded.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 30000 /* generous: a loaded 2-core box */

static redisContext *redis;
static PGconn *pg;
static th_keys K;
static char dir[64], so_path[128], so_env[160], logfile[128];
static pid_t pid;
static unsigned http_port; /* the host's /metrics, on a port it chose */

static void setup(void)
{
	rs_connect(&redis, &pg);
	th_keys_init(&K, "hotswap");
	snprintf(dir, sizeof(dir), "/tmp/hotswap-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(so_path, sizeof(so_path), "%s/health_events.so", dir);
	snprintf(so_env, sizeof(so_env), "APPHOST_COMPONENTS=%s", so_path);
	snprintf(logfile, sizeof(logfile), "%s/apphost.log", dir);
	pid = 0;
}

static void teardown(void)
{
	if (pid > 0)
		ap_kill9(pid);
	/* The log stays for a look after a failure; the builds go. */
	unlink(so_path);
	rs_disconnect(&redis, &pg);
}

TestSuite(hotswap, .init = setup, .fini = teardown, .timeout = 240);

/* ---- files --------------------------------------------------------------- */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert(v && v[0], "%s must be set by meson", name);
	return v;
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	cr_assert(n >= 0);
	rewind(f);
	char *b = malloc((size_t)n + 1);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	b[n] = '\0';
	*len = (size_t)n;
	return b;
}

static void write_all(int fd, const void *b, size_t n)
{
	const char *p = b;
	/* In 64 KiB pieces, as cp does. */
	for (size_t done = 0; done < n;) {
		size_t k = n - done < 65536 ? n - done : 65536;
		ssize_t w = write(fd, p + done, k);
		cr_assert(w > 0, "write: %s", strerror(errno));
		done += (size_t)w;
	}
}

/* A build's way: write a temp file beside it, then rename it over. */
static void put_rename_bytes(const void *b, size_t n)
{
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/.health_events.so.XXXXXX", dir);
	int fd = mkstemp(tmp);
	cr_assert(fd >= 0);
	write_all(fd, b, n);
	cr_assert_eq(fchmod(fd, 0755), 0);
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(rename(tmp, so_path), 0, "rename: %s", strerror(errno));
}

/* cp's way: truncate the file and write it again in place. */
static void put_inplace_bytes(const void *b, size_t n)
{
	int fd = open(so_path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	cr_assert(fd >= 0, "%s: %s", so_path, strerror(errno));
	write_all(fd, b, n);
	cr_assert_eq(close(fd), 0);
}

static void put_rename(const char *src)
{
	size_t n;
	void *b = slurp(src, &n);
	put_rename_bytes(b, n);
	free(b);
}

static void put_inplace(const char *src)
{
	size_t n;
	void *b = slurp(src, &n);
	put_inplace_bytes(b, n);
	free(b);
}

/* ---- the apphost log ------------------------------------------------------
 */

static size_t log_count(const char *needle)
{
	return ap_log_count(logfile, needle, NULL);
}

/* Wait until `needle` is on n lines; returns the n-th line (malloc). */
static char *wait_log(const char *needle, size_t n)
{
	return ap_wait_log(logfile, needle, n, pid, WAIT_MS);
}

#define SWAPPED "apphost component swapped "
#define REFUSED "hot swap refused"

/* The private directory the host reported. */
static void private_dir(char *out, size_t len)
{
	char *l = wait_log("hot swap enabled", 1);
	char *d = strstr(l, "dir=");
	cr_assert_not_null(d);
	snprintf(out, len, "%s", d + 4);
	out[strcspn(out, " \n")] = '\0';
	free(l);
}

/* ---- the host -------------------------------------------------------------
 */

static void spawn(void)
{
	const char *const env[] = {
	    "APPHOST_HOT_SWAP=1",     so_env, "APPHOST_HTTP_ADDR=127.0.0.1:0",
	    "APPHOST_LOG_LEVEL=info", NULL,
	};

	pid = ap_spawn_he(&K, logfile, env);
	char *l = wait_log("http endpoint listening", 1);
	const char *p = strstr(l, " port=");
	cr_assert(p && sscanf(p, " port=%u", &http_port) == 1, "%s", l);
	free(l);
	free(wait_log("hot swap: watching", 1));
}

/*
 * The health_events_build_info series on /metrics: how many, and how many
 * of them are 1 (*running) and with that version (*running_is_want).
 */
static void build_info(const char *want, int *series, int *running,
		       int *running_is_want)
{
	char cmd[160], line[512], ver[128];
	double v;
	snprintf(cmd, sizeof(cmd),
		 "curl -sS --max-time 10 http://127.0.0.1:%u/metrics",
		 http_port);
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	*series = *running = *running_is_want = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line,
			   "health_events_build_info{version=\"%127[^\"]\"%*[^}"
			   "]} %lf",
			   ver, &v) == 2) {
			(*series)++;
			*running += v == 1;
			*running_is_want += v == 1 && !strcmp(ver, want);
		}
	pclose(f);
}

/* SIGTERM and wait; returns the exit status. */
static int terminate(void)
{
	int rc = ap_terminate(pid);

	pid = 0;
	return rc;
}

/* One entry through the host: proves the running build serves. */
static void feed(const char *game, const char *type)
{
	char *id =
	    th_xadd(redis, K.stream, "game_id", game, "event_type", type, NULL);
	cr_assert(th_wait_offset(redis, K.offset_key, id, WAIT_MS),
		  "entry %s not processed (log: %s)", id, logfile);
	free(id);
}

/*
 * One running game (turn `turn`), the repo's build at so_path, the host
 * started, one entry processed; the game id and the private directory
 * are returned.
 */
static void start_one_game(char *game, size_t glen, int turn, char *pdir,
			   size_t plen)
{
	snprintf(game, glen, "%s:g", K.prefix);
	th_insert_game(pg, game, "running", turn);
	put_rename(env("HE_SO"));
	spawn();
	private_dir(pdir, plen);
	feed(game, "container_oom");
}

/* ---- the model of DESIGN §4-§6 ---------------------------------------------
 */

static const struct {
	const char *type, *summary, *from, *to;
	int weight;
} kinds[] = {
    {"container_oom", "oom", "running", "engine_unreachable", 3},
    {"container_exited", "exited", "running", "engine_unreachable", 2},
    {"container_disappeared", "disappeared", "running", "engine_unreachable",
     1},
    {"probe_recovered", "healthy", "engine_unreachable", "running", 5},
    {"inspect_unhealthy", "unhealthy", NULL, NULL, 2},
    {"probe_failed", "probe_failed", NULL, NULL, 2},
    {"container_started", "healthy", NULL, NULL, 1},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))
#define NGAMES 100

struct game {
	char status[32];
	const char *health;
	const char *last_pub; /* NULL: nothing published yet */
	int turn;
	char **want; /* ids of entries the model publishes, in order */
	size_t nwant;
};

static int kind_of(const char *type)
{
	for (size_t k = 0; k < NKINDS; k++)
		if (strcmp(kinds[k].type, type) == 0)
			return (int)k;
	return -1;
}

static int game_index(const char *game_id)
{
	size_t n = strlen(K.prefix);
	if (strncmp(game_id, K.prefix, n) != 0 || strncmp(game_id + n, ":g", 2))
		return -1;
	return atoi(game_id + n + 2);
}

static void model_apply(struct game *g, const char *type, const char *id)
{
	int k = kind_of(type);
	cr_assert(k >= 0, "unknown type %s", type);
	bool changed = false;
	if (kinds[k].from && strcmp(g->status, kinds[k].from) == 0) {
		snprintf(g->status, sizeof(g->status), "%s", kinds[k].to);
		changed = true;
	}
	g->health = kinds[k].summary;
	if (changed || !g->last_pub || strcmp(g->last_pub, g->health)) {
		g->want = realloc(g->want, (g->nwant + 1) * sizeof(*g->want));
		cr_assert_not_null(g->want);
		g->want[g->nwant++] = strdup(id);
		g->last_pub = g->health;
	}
}

/* ---- the writer
 * ---------------------------------------------------------------- */

struct writer {
	pthread_t thread;
	atomic_bool swaps_done;
	atomic_size_t written;
	size_t min; /* at least this many, and on until swaps_done */
	size_t max; /* never more */
	char last[64];
	char error[256];
};

static void *write_entries(void *arg)
{
	struct writer *w = arg;
	redisContext *c = rs_redis();
	uint32_t seed = 12345, total = 0;
	char game[160];

	for (size_t k = 0; k < NKINDS; k++)
		total += (uint32_t)kinds[k].weight;
	if (!c) {
		snprintf(w->error, sizeof(w->error), "no redis connection");
		return NULL;
	}
	for (size_t i = 0; i < w->max; i++) {
		if (i >= w->min && atomic_load(&w->swaps_done))
			break;
		seed = seed * 1103515245u + 12345u;
		uint32_t r = (seed >> 8) % total, k = 0;
		while (r >= (uint32_t)kinds[k].weight)
			r -= (uint32_t)kinds[k++].weight;
		snprintf(game, sizeof(game), "%s:g%03u", K.prefix,
			 (seed >> 20) % NGAMES);
		const char *argv[] = {"XADD",	    K.stream, "*",
				      "game_id",    game,     "event_type",
				      kinds[k].type};
		redisReply *rep = redisCommandArgv(c, 7, argv, NULL);
		if (!rep || rep->type != REDIS_REPLY_STRING) {
			snprintf(w->error, sizeof(w->error), "XADD: %s",
				 rep && rep->str ? rep->str : c->errstr);
			if (rep)
				freeReplyObject(rep);
			break;
		}
		snprintf(w->last, sizeof(w->last), "%s", rep->str);
		freeReplyObject(rep);
		atomic_store(&w->written, i + 1);
		usleep(1000); /* steady, not a burst */
	}
	redisFree(c);
	return NULL;
}

/* ---- tests
 * ---------------------------------------------------------------------- */

Test(hotswap, swaps_under_load_skip_no_entry)
{
	const char *he = env("HE_SO"), *variant = env("HE_VARIANT_SO");
	struct game games[NGAMES] = {0};
	char gid[160];

	for (int i = 0; i < NGAMES; i++) {
		snprintf(gid, sizeof(gid), "%s:g%03d", K.prefix, i);
		th_insert_game(pg, gid, "running", i);
		snprintf(games[i].status, sizeof(games[i].status), "running");
		games[i].health = "";
		games[i].turn = i;
	}
	put_rename(he);
	spawn();

	struct writer w = {.min = 3000, .max = 20000};
	atomic_init(&w.swaps_done, false);
	atomic_init(&w.written, 0);
	cr_assert_eq(pthread_create(&w.thread, NULL, write_entries, &w), 0);
	while (atomic_load(&w.written) < 300)
		usleep(10000);

	/* The same bytes renamed over, another build rewritten in place,
	 * the first build renamed back, then SIGHUP: four swaps. */
	put_rename(he);
	free(wait_log(SWAPPED, 1));
	usleep(300000);
	put_inplace(variant);
	char *l = wait_log(SWAPPED, 2);
	cr_expect(strstr(l, "new_version=hotswap-test"), "%s", l);
	free(l);
	usleep(300000);
	put_rename(he);
	l = wait_log(SWAPPED, 3);
	cr_expect(strstr(l, "old_version=hotswap-test"), "%s", l);
	free(l);
	usleep(300000);
	kill(pid, SIGHUP);
	free(wait_log(SWAPPED, 4));
	size_t during = atomic_load(&w.written);
	atomic_store(&w.swaps_done, true);
	pthread_join(w.thread, NULL);
	cr_assert_str_empty(w.error, "writer: %s", w.error);
	size_t written = atomic_load(&w.written);
	cr_expect_lt(during, written, "the load went on through every swap");
	cr_assert(th_wait_offset(redis, K.offset_key, w.last, 60000),
		  "the offset reached the last entry %s (log: %s)", w.last,
		  logfile);
	size_t swaps = log_count(SWAPPED);
	cr_expect_eq(log_count(REFUSED), 0, "no refusals (log: %s)", logfile);

	/* The model, from the stream as the host read it. */
	redisReply *in = th_xrange(redis, K.stream);
	cr_assert_eq(in->elements, written);
	cr_assert_str_eq(in->element[in->elements - 1]->element[0]->str,
			 w.last);
	for (size_t i = 0; i < in->elements; i++) {
		int gi = game_index(th_field(in->element[i], "game_id"));
		cr_assert(gi >= 0 && gi < NGAMES);
		model_apply(&games[gi], th_field(in->element[i], "event_type"),
			    in->element[i]->element[0]->str);
	}
	freeReplyObject(in);

	/* Lobby: per game, the model's snapshots in order, plus at most
	 * one redundant one per swap; the last equals the row. */
	redisReply *out = th_xrange(redis, K.lobby);
	size_t extra_total = 0;
	for (int gi = 0; gi < NGAMES; gi++) {
		struct game *g = &games[gi];
		snprintf(gid, sizeof(gid), "%s:g%03d", K.prefix, gi);
		/* Walk both in stream order: a snapshot is the model's next
		 * one, a later one (those before it are missing), or extra. */
		size_t next = 0, missing = 0, extra = 0;
		const char *last = NULL;
		for (size_t j = 0; j < out->elements; j++) {
			if (strcmp(th_field(out->element[j], "game_id"), gid))
				continue;
			const char *src =
			    th_field(out->element[j], "source_id");
			size_t k = next;
			while (k < g->nwant && strcmp(src, g->want[k]))
				k++;
			if (k < g->nwant) {
				missing += k - next;
				next = k + 1;
			} else {
				extra++;
			}
			last = th_field(out->element[j], "payload");
		}
		missing += g->nwant - next;
		cr_expect_eq(missing, 0,
			     "%s: %zu of the model's %zu snapshots missing",
			     gid, missing, g->nwant);
		cr_expect_leq(extra, swaps, "%s: %zu redundant snapshots", gid,
			      extra);
		extra_total += extra;

		char *r = th_row(pg, gid), want_row[160];
		int wn = snprintf(want_row, sizeof(want_row), "%s/%s/%d",
				  g->status, g->health, g->turn);
		cr_assert(wn > 0 && (size_t)wn < sizeof(want_row));
		cr_expect_str_eq(r ? r : "(none)", want_row, "row of %s", gid);
		free(r);
		if (g->nwant) {
			char p[512];
			th_payload(p, sizeof(p), gid, g->status, g->health,
				   g->turn);
			cr_expect_str_eq(last ? last : "(none)", p,
					 "Lobby's last snapshot of %s", gid);
		}
		for (size_t k = 0; k < g->nwant; k++)
			free(g->want[k]);
		free(g->want);
	}
	freeReplyObject(out);
	redisReply *d = th_cmd(redis, "XLEN", K.dead, NULL);
	cr_expect_eq(d->integer, 0, "no dead letters");
	freeReplyObject(d);
	cr_log_info("%zu entries, %zu swaps, %zu redundant snapshots", written,
		    swaps, extra_total);
	cr_assert_eq(terminate(), 0, "SIGTERM exits 0 (log: %s)", logfile);
}

/* Files in `path` (a directory), not counting . and .. */
static size_t dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

Test(hotswap, broken_replacements_leave_the_old_build_serving)
{
	static const struct {
		const char *what, *file_env, *why;
		bool inplace;
	} bad[] = {
	    {"no magic", "NOMAGIC_SO", "missing symbol apphost_component_magic",
	     false},
	    {"wrong ABI", "BADMAJOR_SO", "ABI major 2, host supports 1", true},
	    {"init failing", "INITFAIL_SO", "init failed", false},
	};
	char game[160], pdir[256];
	start_one_game(game, sizeof(game), 3, pdir, sizeof(pdir));

	size_t refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i].inplace)
			put_inplace(env(bad[i].file_env));
		else
			put_rename(env(bad[i].file_env));
		char *l = wait_log(REFUSED, ++refused);
		cr_expect(strstr(l, bad[i].why), "%s: %s", bad[i].what, l);
		free(l);
		feed(game, i % 2 ? "probe_recovered" : "container_oom");
	}
	cr_expect_eq(log_count("init refuses on purpose"), 1);

	/* Half a build, as a reader sees a file being written. */
	size_t n;
	char *he = slurp(env("HE_SO"), &n);
	put_inplace_bytes(he, n / 2);
	char *l = wait_log(REFUSED, ++refused);
	cr_expect(strstr(l, "truncated"), "half a file: %s", l);
	free(l);
	feed(game, "probe_recovered");
	put_rename_bytes("not a shared object\n", 20);
	l = wait_log(REFUSED, ++refused);
	cr_expect(strstr(l, "not an ELF file"), "text: %s", l);
	free(l);
	feed(game, "container_oom");

	/* Init works, start fails: the previous build runs again. */
	put_rename(env("STARTFAIL_SO"));
	free(wait_log("previous build restored", 1));
	cr_expect_eq(log_count("start refuses on purpose"), 1);
	feed(game, "probe_recovered");

	/* Removed, then back (another build): swapped. */
	cr_assert_eq(unlink(so_path), 0);
	free(wait_log("component file missing", 1));
	feed(game, "probe_recovered");
	put_rename(env("HE_VARIANT_SO"));
	l = wait_log(SWAPPED, 1);
	cr_expect(strstr(l, "new_version=hotswap-test"), "%s", l);
	free(l);
	feed(game, "container_exited");
	free(he);
	/* a dashboard sees which build runs: only the new one's series is 1 */
	int series, running, is_new;
	build_info("hotswap-test", &series, &running, &is_new);
	cr_expect_eq(series, 2, "the old build's series and the new one's");
	cr_expect_eq(running, 1);
	cr_expect_eq(is_new, 1, "the one at 1 is the running build");

	char *r = th_row(pg, game);
	cr_expect_str_eq(r, "engine_unreachable/exited/3");
	free(r);
	cr_expect_eq(log_count(SWAPPED), 1, "only the good build swapped");
	cr_expect_eq(dir_entries(pdir), 1,
		     "refused copies are removed: only the running one in %s",
		     pdir);
	cr_assert_eq(terminate(), 0, "SIGTERM exits 0 (log: %s)", logfile);
	struct stat st;
	cr_expect(stat(pdir, &st) < 0 && errno == ENOENT,
		  "the private directory %s is removed at exit", pdir);
}

/* What a process holds: threads, fds, and maps lines of private copies. */
struct usage {
	size_t tasks, fds, maps, mapped_files;
};

static struct usage usage_of(const char *pdir)
{
	struct usage u = {0};
	char path[64], *line = NULL, files[8][256];
	size_t cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	u.tasks = dir_entries(path);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	u.fds = dir_entries(path);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	while (getline(&line, &cap, f) > 0) {
		char *p = strstr(line, pdir);
		if (!p)
			continue;
		u.maps++;
		p[strcspn(p, "\n")] = '\0';
		bool seen = false;
		for (size_t i = 0; i < u.mapped_files && i < 8; i++)
			seen = seen || strcmp(files[i], p) == 0;
		if (!seen && u.mapped_files < 8)
			snprintf(files[u.mapped_files], sizeof(files[0]), "%s",
				 p);
		if (!seen)
			u.mapped_files++;
	}
	free(line);
	fclose(f);
	return u;
}

Test(hotswap, fifty_swaps_keep_threads_fds_and_maps_bounded)
{
	char game[160], pdir[256];
	start_one_game(game, sizeof(game), 1, pdir, sizeof(pdir));

	struct usage base = {0}, now;
	for (size_t k = 1; k <= 50; k++) {
		kill(pid, SIGHUP);
		free(wait_log(SWAPPED, k));
		if (k % 10 == 0)
			feed(game,
			     k % 20 ? "probe_recovered" : "container_oom");
		if (k == 5)
			base = usage_of(pdir);
	}
	feed(game, "probe_failed");
	now = usage_of(pdir);
	cr_log_info("after 5 swaps: %zu threads, %zu fds, %zu maps lines; "
		    "after 50: %zu, %zu, %zu",
		    base.tasks, base.fds, base.maps, now.tasks, now.fds,
		    now.maps);
	cr_expect_leq(now.tasks, base.tasks + 2, "threads: %zu -> %zu",
		      base.tasks, now.tasks);
	cr_expect_leq(now.fds, base.fds + 4, "fds: %zu -> %zu", base.fds,
		      now.fds);
	cr_expect_gt(now.maps, 0, "the running copy is mapped from %s", pdir);
	cr_expect_leq(now.maps, base.maps, "maps lines: %zu -> %zu", base.maps,
		      now.maps);
	cr_expect_eq(now.mapped_files, 1, "one copy mapped, not %zu",
		     now.mapped_files);
	cr_expect_eq(dir_entries(pdir), 1, "one copy left in %s", pdir);
	cr_expect_eq(log_count("trigger=SIGHUP"), 50);
	cr_expect_eq(log_count(REFUSED), 0);
	char *r = th_row(pg, game);
	cr_expect_str_eq(r, "running/probe_failed/1");
	free(r);
	cr_assert_eq(terminate(), 0, "SIGTERM exits 0 (log: %s)", logfile);
}
