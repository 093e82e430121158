/* helpers.c -- see helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pool_pg.h"
#include "pool_redis.h"

extern char **environ;

const char *comp_path(const char *name)
{
	static char bufs[4][4096];
	static int next;
	const char *dir = getenv("TEST_COMPONENTS_DIR");
	char *b = bufs[next++ % 4];

	cr_assert(dir != NULL, "TEST_COMPONENTS_DIR not set (run via meson)");
	snprintf(b, sizeof(bufs[0]), "%s/%s.so", dir, name);
	return b;
}

static char tmp_path[256];

static void tmp_cleanup(void)
{
	char cmd[300];

	if (tmp_path[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_path);
		if (system(cmd) != 0) {
			/* best effort */
		}
	}
}

const char *tmp_dir(void)
{
	if (tmp_path[0] == '\0') {
		snprintf(tmp_path, sizeof(tmp_path),
			 "/tmp/apphost-test-XXXXXX");
		cr_assert(mkdtemp(tmp_path) != NULL, "mkdtemp: %s",
			  strerror(errno));
		atexit(tmp_cleanup);
	}
	return tmp_path;
}

int copy_file(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	close(in);
	fchmod(out, mode);
	close(out);
	return n == 0 ? 0 : -EIO;
}

char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	char *s = NULL;
	size_t len = 0;

	if (f == NULL)
		return NULL;
	FILE *m = open_memstream(&s, &len);
	int c;

	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	fclose(f);
	return s;
}

static char log_path[512];

void log_capture_start(void)
{
	int fd;

	snprintf(log_path, sizeof(log_path), "%s/log.txt", tmp_dir());
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
		  0600);
	cr_assert(fd >= 0);
	apphost_log_set_fd(fd);
	apphost_log_set_level(APPHOST_LOG_DEBUG);
}

char *log_captured(void)
{
	char *s = read_text(log_path);

	return s != NULL ? s : strdup("");
}

struct apphost_ctx *test_ctx_new(void)
{
	struct apphost_ctx *ctx = calloc(1, sizeof(*ctx));
	char err[256];

	cr_assert(ctx != NULL);
	cr_assert(apphost_config_new(&ctx->cfg) == 0);
	cr_assert(apphost_redis_pool_new("redis://127.0.0.1:1/0", 2,
					 &ctx->redis, err, sizeof(err)) == 0,
		  "%s", err);
	cr_assert(apphost_pg_pool_new("", 2, &ctx->pg, err, sizeof(err)) == 0,
		  "%s", err);
	ctx->shutdown_timeout_ms = 2000;
	return ctx;
}

void test_ctx_free(struct apphost_ctx *ctx)
{
	if (ctx == NULL)
		return;
	apphost_redis_pool_free(ctx->redis);
	apphost_pg_pool_free(ctx->pg);
	apphost_config_free(ctx->cfg);
	free(ctx);
}

/*
 * environ with extra_env ("K=V", NULL-terminated, may be NULL; no key
 * twice) laid over it: a malloc()ed vector of borrowed strings, built
 * before the child exists so nothing runs between fork and exec.
 */
static char **env_over(char *const extra_env[])
{
	size_t n = 0, k = 0, j = 0;
	char **v;

	while (environ[n] != NULL)
		n++;
	while (extra_env != NULL && extra_env[k] != NULL)
		k++;
	v = calloc(n + k + 1, sizeof(*v));
	cr_assert_not_null(v);
	for (size_t i = 0; i < n; i++) {
		size_t klen = strcspn(environ[i], "=");
		size_t x = 0;

		while (x < k &&
		       !(strncmp(extra_env[x], environ[i], klen) == 0 &&
			 extra_env[x][klen] == '='))
			x++;
		if (x == k) /* not overridden */
			v[j++] = environ[i];
	}
	for (size_t x = 0; x < k; x++)
		v[j++] = extra_env[x];
	return v;
}

pid_t spawn_cmd(char *const argv[], char *const extra_env[], bool to_stdout,
		int *rfd)
{
	posix_spawn_file_actions_t fa;
	char **envp = env_over(extra_env);
	int pfd[2], rc;
	pid_t pid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
	cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
	if (to_stdout)
		cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, pfd[1], 1),
			     0);
	cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, pfd[1], 2), 0);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	close(pfd[1]);
	cr_assert_eq(rc, 0, "posix_spawn %s: %s", argv[0], strerror(rc));
	*rfd = pfd[0];
	return pid;
}

int run_cmd(char *const argv[], char *const extra_env[], char **out)
{
	int fd, status;
	pid_t pid = spawn_cmd(argv, extra_env, true, &fd);
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	char chunk[4096];
	ssize_t n;

	m = open_memstream(&buf, &len);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		fwrite(chunk, 1, (size_t)n, m);
	fclose(m);
	close(fd);
	if (waitpid(pid, &status, 0) < 0) {
		free(buf);
		return -1;
	}
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

const char *need_env(const char *key)
{
	const char *v = getenv(key);

	if (v != NULL && v[0] != '\0')
		return v;
	if (getenv("CI") != NULL)
		cr_assert_fail(
		    "%s is not set but CI is: servers are required "
		    "(scripts/services start && eval \"$(scripts/services "
		    "env)\")",
		    key);
	cr_skip_test("%s not set: no server (run scripts/services start && "
		     "eval \"$(scripts/services env)\")",
		     key);
	return NULL;
}

static void *swap_loop(void *arg)
{
	struct swapper *s = arg;

	while (!atomic_load(&s->stop)) {
		if (s->redo_dir)
			(void)mkdir(s->a, 0700);
		if (renameat2(AT_FDCWD, s->a, AT_FDCWD, s->b,
			      RENAME_EXCHANGE) == 0)
			atomic_fetch_add(&s->swaps, 1);
		if (s->redo_dir)
			(void)renameat2(AT_FDCWD, s->a, AT_FDCWD, s->b,
					RENAME_EXCHANGE);
	}
	return NULL;
}

void swapper_start(struct swapper *s)
{
	atomic_store(&s->stop, false);
	atomic_store(&s->swaps, 0);
	cr_assert_eq(pthread_create(&s->thread, NULL, swap_loop, s), 0);
}

int swapper_stop(struct swapper *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	return atomic_load(&s->swaps);
}
