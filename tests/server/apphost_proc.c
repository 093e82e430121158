/* apphost_proc.c -- see apphost_proc.h. */
#include "apphost_proc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct ap_env {
	char **v; /* NULL-terminated */
	size_t n, cap;
};

ap_env *ap_env_new(void)
{
	ap_env *e = calloc(1, sizeof(*e));

	cr_assert_not_null(e);
	e->cap = 64;
	e->v = calloc(e->cap, sizeof(*e->v));
	cr_assert_not_null(e->v);
	for (char **p = environ; *p; p++)
		ap_env_put(e, *p);
	return e;
}

void ap_env_free(ap_env *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	free(e);
}

void ap_env_put(ap_env *e, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	char *copy = strdup(kv);

	cr_assert_not_null(copy);
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->v[i], kv, klen) == 0 && e->v[i][klen] == '=') {
			free(e->v[i]);
			e->v[i] = copy;
			return;
		}
	if (e->n + 2 > e->cap) {
		size_t cap = e->cap * 2;
		char **v = realloc(e->v, cap * sizeof(*v));

		cr_assert_not_null(v);
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = copy;
	e->v[e->n] = NULL;
}

void ap_env_put_all(ap_env *e, const char *const *kvs)
{
	for (size_t i = 0; kvs && kvs[i]; i++)
		ap_env_put(e, kvs[i]);
}

pid_t ap_spawn(const char *bin, const ap_env *e, const char *logfile)
{
	char *argv[] = {(char *)bin, NULL};

	return ap_spawn_argv(argv, e, logfile);
}

pid_t ap_spawn_argv(char *const *argv, const ap_env *e, const char *logfile)
{
	posix_spawn_file_actions_t fa;
	const char *bin = argv[0];
	pid_t pid;
	int rc;

	cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
	cr_assert_eq(
	    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0),
	    0);
	cr_assert_eq(posix_spawn_file_actions_addopen(
			 &fa, 2, logfile, O_WRONLY | O_CREAT | O_APPEND, 0644),
		     0);
	rc = posix_spawn(&pid, bin, &fa, NULL, argv, e->v);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "posix_spawn %s: %s", bin, strerror(rc));
	return pid;
}

pid_t ap_spawn_he(const th_keys *k, const char *logfile,
		  const char *const *extra)
{
	const char *bin = getenv("APPHOST_BIN"), *so = getenv("HE_SO");
	ap_env *e;
	char *kv;
	pid_t pid;

	cr_assert(bin && so, "APPHOST_BIN and HE_SO must be set by meson");
	e = ap_env_new();
	const char *const he[][2] = {
	    {"APPHOST_COMPONENTS", so},
	    {"HEALTH_EVENTS_STREAM", k->stream},
	    {"HEALTH_EVENTS_LOBBY_STREAM", k->lobby},
	    {"HEALTH_EVENTS_DEAD_LETTER_STREAM", k->dead},
	    {"HEALTH_EVENTS_OFFSET_LABEL", k->prefix},
	    {"HEALTH_EVENTS_BLOCK_MS", "1000"},
	};
	for (size_t i = 0; i < sizeof(he) / sizeof(he[0]); i++) {
		cr_assert(asprintf(&kv, "%s=%s", he[i][0], he[i][1]) > 0);
		ap_env_put(e, kv);
		free(kv);
	}
	ap_env_put_all(e, extra);
	pid = ap_spawn(bin, e, logfile);
	ap_env_free(e);
	return pid;
}

int ap_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* waitpid() through EINTR. */
static pid_t reap(pid_t pid, int *status, int options)
{
	pid_t r;

	while ((r = waitpid(pid, status, options)) < 0 && errno == EINTR)
		;
	return r;
}

int ap_terminate(pid_t pid)
{
	int st = 0;

	kill(pid, SIGTERM);
	(void)reap(pid, &st, 0);
	return ap_exit_code(st);
}

int ap_terminate_within(pid_t pid, int wait_ms, double *elapsed_ms)
{
	double t0 = th_now_ms();
	int st = 0, rc = -1;
	pid_t r;

	kill(pid, SIGTERM);
	while ((r = reap(pid, &st, WNOHANG)) == 0 &&
	       th_now_ms() - t0 <= wait_ms)
		usleep(5000);
	if (r == 0)
		ap_kill9(pid);
	else
		rc = ap_exit_code(st);
	if (elapsed_ms)
		*elapsed_ms = th_now_ms() - t0;
	return rc;
}

void ap_kill9(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	(void)reap(pid, &st, 0);
}

char *ap_read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *s = NULL;
	size_t len = 0;
	int c;

	if (f == NULL)
		return NULL;
	FILE *m = open_memstream(&s, &len);
	cr_assert_not_null(m);
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	fclose(f);
	return s;
}

/*
 * Count the lines of path that contain every needle; the nth of them
 * (0-based) is returned, malloc()ed, and the walk stops there (SIZE_MAX:
 * count them all, return NULL).
 */
static char *scan(const char *path, const char *const *needles, size_t nn,
		  size_t nth, size_t *count)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *found = NULL;
	size_t cap = 0;

	*count = 0;
	if (!f)
		return NULL;
	while (found == NULL && getline(&line, &cap, f) > 0) {
		size_t k = 0;
		while (k < nn && strstr(line, needles[k]))
			k++;
		if (k == nn && (*count)++ == nth)
			found = strdup(line);
	}
	free(line);
	fclose(f);
	return found;
}

size_t ap_log_count(const char *path, const char *needle, ...)
{
	const char *needles[8];
	size_t nn = 0, count;
	va_list ap;

	va_start(ap, needle);
	for (const char *s = needle; s && nn < 8; s = va_arg(ap, const char *))
		needles[nn++] = s;
	va_end(ap);
	(void)scan(path, needles, nn, SIZE_MAX, &count);
	return count;
}

char *ap_log_line(const char *path, const char *needle, size_t nth)
{
	size_t count;

	return scan(path, &needle, 1, nth, &count);
}

char *ap_wait_log(const char *path, const char *needle, size_t n, pid_t pid,
		  int timeout_ms)
{
	double end = th_now_ms() + timeout_ms;

	do {
		char *l = ap_log_line(path, needle, n - 1);
		if (l)
			return l;
		cr_assert(pid <= 0 || waitpid(pid, NULL, WNOHANG) == 0,
			  "apphost exited (log: %s)", path);
		usleep(20000);
	} while (th_now_ms() < end);
	cr_assert_fail("no %zu lines with \"%s\" in %d ms (log: %s)", n, needle,
		       timeout_ms, path);
	return NULL;
}

/* The row of game as "status/health/turn" equals want. */
static void expect_row(PGconn *rows, const char *game, const char *want)
{
	char *row = th_row(rows, game);
	cr_expect_str_eq(row ? row : "(none)", want, "row of %s", game);
	free(row);
}

void ap_two_instances_fail_over(const th_keys *k, redisContext *r, PGconn *rows,
				const char *tag, void (*spawn)(int),
				pid_t pids[2], char (*logs)[128])
{
	char g1[160], g2[160];
	snprintf(g1, sizeof(g1), "%s:g1", k->prefix);
	snprintf(g2, sizeof(g2), "%s:g2", k->prefix);
	th_insert_game(rows, g1, "running", 1);
	th_insert_game(rows, g2, "running", 2);
	spawn(0);
	free(ap_wait_log(logs[0], "leadership acquired", 1, pids[0], 20000));
	spawn(1);
	free(ap_wait_log(logs[1], "consumer starting", 1, pids[1], 20000));
	th_oom_committed(r, k, g1, 20000);
	expect_row(rows, g1, "engine_unreachable/oom/1");

	int old = th_lease_holder(rows, k->prefix, tag);
	cr_assert(old == 0 || old == 1, "holder %d", old);
	ap_kill9(pids[old]);
	pids[old] = 0;
	int now = 1 - old;
	free(
	    ap_wait_log(logs[now], "leadership acquired", 1, pids[now], 20000));
	th_oom_committed(r, k, g2, 20000);
	expect_row(rows, g2, "engine_unreachable/oom/2");
	cr_expect_eq(ap_terminate(pids[now]), 0, "a graceful stop");
	pids[now] = 0;
}

char *ap_capture(const char *cmdline, int *status)
{
	char buf[4096];
	size_t len = 0;
	char *out = calloc(1, 1);
	FILE *p = popen(cmdline, "r");
	cr_assert(p != NULL && out != NULL, "popen %s", cmdline);
	for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0; len += n) {
		out = realloc(out, len + n + 1);
		cr_assert(out != NULL);
		memcpy(out + len, buf, n);
		out[len + n] = '\0';
	}
	*status = pclose(p);
	return out;
}

int ap_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}
