/* ops.c -- see ops.h. */
#include "ops.h"

#include "apphost_proc.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The file's text, or "" when it cannot be read (curl wrote nothing). */
static char *slurp(const char *path)
{
	char *s = ap_read_file(path);

	return s ? s : strdup("");
}

ops_resp ops_http(int port, const char *path, const char *extra)
{
	char body[64], hdr[64], *cmd;
	ops_resp r = {0};
	snprintf(body, sizeof(body), "/tmp/ops-body-%d", (int)getpid());
	snprintf(hdr, sizeof(hdr), "/tmp/ops-hdr-%d", (int)getpid());
	cr_assert(asprintf(&cmd,
			   "curl -sS --max-time 10 -o %s -D %s -w "
			   "'%%{http_code}' %s 'http://127.0.0.1:%d%s' "
			   "2>/dev/null",
			   body, hdr, extra ? extra : "", port, path) > 0);
	FILE *p = popen(cmd, "r");
	free(cmd);
	cr_assert_not_null(p, "popen curl");
	if (fscanf(p, "%d", &r.status) != 1)
		r.status = 0;
	pclose(p);
	r.body = slurp(body);
	r.headers = slurp(hdr);
	unlink(body);
	unlink(hdr);
	return r;
}

void ops_resp_free(ops_resp *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
}

int ops_free_port(void)
{
	return ap_free_port();
}

double ops_sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

bool ops_wait_status(int port, const char *path, int want, int timeout_ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ops_resp r = ops_http(port, path, NULL);
		int st = r.status;
		ops_resp_free(&r);
		if (st == want)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
			(t.tv_nsec - t0.tv_nsec) / 1000000 >
		    timeout_ms)
			return false;
		usleep(100 * 1000);
	}
}

int ops_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	cr_assert(n > 0);
	int st = system(cmd);
	free(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void ops_private_do(const ops_private *p, const char *what)
{
	cr_assert_eq(
	    ops_sh("APPHOST_RUN_DIR='%s' '%s/scripts/services' %s "
		   ">>'%s.services' 2>&1",
		   p->run_dir, getenv("APPHOST_SRC"), what, p->run_dir),
	    0, "scripts/services %s (see %s.services)", what, p->run_dir);
}

void ops_private_start(ops_private *p, const char *tag)
{
	memset(p, 0, sizeof(*p));
	cr_assert(getenv("APPHOST_SRC"), "APPHOST_SRC must be set by meson");
	snprintf(p->run_dir, sizeof(p->run_dir), "%s/ops-run-%d-%s",
		 getenv("OPS_RUN_BASE") ? getenv("OPS_RUN_BASE") : "/tmp",
		 (int)getpid(), tag);
	ops_private_do(p, "start");
	char cmd[1024], line[512];
	snprintf(cmd, sizeof(cmd),
		 "APPHOST_RUN_DIR='%s' '%s/scripts/services' env", p->run_dir,
		 getenv("APPHOST_SRC"));
	FILE *f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "export APPHOST_REDIS_URL=", 25))
			snprintf(p->redis_url, sizeof(p->redis_url), "%s",
				 line + 25);
		if (!strncmp(line, "export APPHOST_POSTGRES_DSN=", 28))
			snprintf(p->pg_dsn, sizeof(p->pg_dsn), "%s", line + 28);
	}
	if (f)
		pclose(f);
	cr_assert(p->redis_url[0] && p->pg_dsn[0], "private services env");
	cr_assert_eq(ops_sh("APPHOST_POSTGRES_DSN='%s' '%s' >/dev/null",
			    p->pg_dsn, getenv("APPHOST_MIGRATE")),
		     0);
}

void ops_private_stop(ops_private *p)
{
	if (!p->run_dir[0])
		return;
	(void)ops_sh("APPHOST_RUN_DIR='%s' '%s/scripts/services' stop "
		     ">/dev/null 2>&1; rm -rf '%s'",
		     p->run_dir, getenv("APPHOST_SRC"), p->run_dir);
	p->run_dir[0] = '\0';
}
