/* helpers.c -- see helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
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

int run_cmd(char *const argv[], char *const extra_env[], char **out)
{
	int pfd[2];
	pid_t pid;
	int status;
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	char chunk[4096];
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL;
		     i++)
			putenv(extra_env[i]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	m = open_memstream(&buf, &len);
	while ((n = read(pfd[0], chunk, sizeof(chunk))) > 0)
		fwrite(chunk, 1, (size_t)n, m);
	fclose(m);
	close(pfd[0]);
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
