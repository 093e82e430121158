/*
 * Suite tls: Redis over TLS the way operations.md documents it. A Redis of
 * the test's own listens on a TLS port only (no plain port), with a
 * certificate from a CA made here with openssl; a stunnel4 client on
 * loopback verifies it and is all apphost sees (redis://127.0.0.1:<sidecar>).
 * End to end: an entry is applied and published through the sidecar;
 * then Redis dies behind it (connects to the sidecar still succeed,
 * commands fail): not ready, backoff, and work resumes once Redis is back.
 *
 * Needs stunnel4 and openssl (scripts/deps installs them): without them
 * the suite says so and skips, or fails under CI.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[64], redis_conf[128], stunnel_conf[128];
static char redis_log[128], stunnel_log[128], he_log[128];
static int tls_port, side_port;
static pid_t redis_pid, stunnel_pid, he_pid;
static PGconn *pg;
static th_keys K;

static bool have(const char *prog)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static void need(const char *prog)
{
	if (have(prog))
		return;
	if (getenv("CI"))
		cr_assert_fail("%s is not installed: scripts/deps installs it",
			       prog);
	cr_skip_test("%s is not installed (scripts/deps installs it): the "
		     "Redis-over-TLS sidecar is not tested",
		     prog);
}

static void sh(const char *cmd)
{
	int rc;
	char *out = ap_capture(cmd, &rc);
	cr_assert_eq(rc, 0, "%s:\n%s", cmd, out);
	free(out);
}

/* dir/name into path (cap bytes), then the formatted text into it. */
__attribute__((format(printf, 4, 5))) static void
write_conf(char *path, size_t cap, const char *name, const char *fmt, ...)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert(f != NULL, "%s", path);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* A CA and a server certificate for localhost / 127.0.0.1 in dir. */
static void make_certs(void)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && "
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
		 "-subj /CN=apphost-test-ca -keyout ca.key -out ca.pem && "
		 "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost "
		 "-keyout server.key -out server.csr && "
		 "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' "
		 "> san.ext && "
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
		 "-CAcreateserial -days 1 -extfile san.ext -out server.pem "
		 "2>&1",
		 dir);
	sh(cmd);
}

/* prog conf, with this environment, stderr to log. */
static pid_t spawn_with_conf(const char *prog, char *conf, const char *log)
{
	char *argv[] = {(char *)prog, conf, NULL};
	ap_env *e = ap_env_new();
	pid_t pid = ap_spawn_argv(argv, e, log);
	ap_env_free(e);
	return pid;
}

static void start_redis(void)
{
	redis_pid =
	    spawn_with_conf("/usr/bin/redis-server", redis_conf, redis_log);
	/* Ready when it says so (its log goes to the file, loglevel notice). */
	free(ap_wait_log(redis_log, "Ready to accept connections", 1, redis_pid,
			 20000));
}

static void stop_redis(void)
{
	if (redis_pid > 0)
		ap_kill9(redis_pid);
	redis_pid = 0;
}

static void setup(void)
{
	rs_require_servers();
	need("stunnel4");
	need("openssl");
	pg = rs_pg();
	cr_assert(pg != NULL);
	snprintf(dir, sizeof(dir), "/tmp/apphost-tls-%d", (int)getpid());
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	sh(cmd);
	make_certs();
	tls_port = ap_free_port();
	side_port = ap_free_port();
	snprintf(redis_log, sizeof(redis_log), "%s/redis.log", dir);
	snprintf(stunnel_log, sizeof(stunnel_log), "%s/stunnel.log", dir);
	snprintf(he_log, sizeof(he_log), "%s/apphost.log", dir);

	write_conf(redis_conf, sizeof(redis_conf), "redis.conf",
		   "bind 127.0.0.1\nport 0\ntls-port %d\n"
		   "tls-cert-file %s/server.pem\ntls-key-file %s/server.key\n"
		   "tls-ca-cert-file %s/ca.pem\ntls-auth-clients no\n"
		   "save \"\"\nappendonly no\ndir %s\nlogfile %s\n",
		   tls_port, dir, dir, dir, dir, redis_log);
	/* The client sidecar as operations.md shows it, on loopback. */
	write_conf(stunnel_conf, sizeof(stunnel_conf), "stunnel.conf",
		   "foreground = yes\npid =\n\n[redis]\nclient = yes\n"
		   "accept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
		   "verifyChain = yes\nCAfile = %s/ca.pem\n"
		   "checkHost = localhost\n",
		   side_port, tls_port, dir);

	start_redis();
	stunnel_pid =
	    spawn_with_conf("/usr/bin/stunnel4", stunnel_conf, stunnel_log);
	th_keys_init(&K, "tls");
}

static void teardown(void)
{
	if (he_pid > 0)
		ap_kill9(he_pid);
	if (stunnel_pid > 0)
		ap_kill9(stunnel_pid);
	stop_redis();
	PQfinish(pg);
	pg = NULL;
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			cr_log_warn("could not remove %s", dir);
	}
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 120);

/* A plain hiredis connection through the sidecar, once it accepts. */
static redisContext *through_sidecar(void)
{
	for (double t0 = th_now_ms(); th_now_ms() - t0 < 10000;) {
		redisContext *c = redisConnect("127.0.0.1", side_port);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			bool ok = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			if (ok)
				return c;
		}
		if (c)
			redisFree(c);
		usleep(100000);
	}
	cr_assert_fail("no PONG through the sidecar (%s)", stunnel_log);
	return NULL;
}

Test(tls, apphost_through_a_stunnel_sidecar_and_redis_down_behind_it)
{
	redisContext *r = through_sidecar();
	char url[96], g1[160], g2[160];
	snprintf(url, sizeof(url), "APPHOST_REDIS_URL=redis://127.0.0.1:%d/0",
		 side_port);
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	snprintf(g2, sizeof(g2), "%s:g2", K.prefix);
	th_insert_game(pg, g1, "running", 1);
	th_insert_game(pg, g2, "running", 2);
	const char *const env[] = {url, "APPHOST_HTTP_ADDR=", NULL};
	he_pid = ap_spawn_he(&K, he_log, env);
	free(ap_wait_log(he_log, "leadership acquired", 1, he_pid, 20000));
	th_oom_committed(r, &K, g1, 20000);
	redisReply *l = th_xrange(r, K.lobby);
	cr_expect_eq(l->elements, 1, "one snapshot through the sidecar");
	freeReplyObject(l);
	redisFree(r);

	/* Redis dies behind the sidecar: connects work, commands fail. */
	stop_redis();
	char *line =
	    ap_wait_log(he_log, "dependency failing", 1, he_pid, 20000);
	cr_expect(strstr(line, "dependency=redis") != NULL, "%s", line);
	free(line);
	free(ap_wait_log(he_log, "not ready reason=\"redis failing", 1, he_pid,
			 5000));

	start_redis();
	free(ap_wait_log(he_log, "dependency recovered", 1, he_pid, 30000));
	r = through_sidecar();
	/* The restarted Redis is empty: the stream starts again. */
	th_oom_committed(r, &K, g2, 30000);
	redisFree(r);
	char *row = th_row(pg, g2);
	cr_expect_str_eq(row, "engine_unreachable/oom/2");
	free(row);
	cr_expect_eq(ap_terminate(he_pid), 0);
	he_pid = 0;
}
