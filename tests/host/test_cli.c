/* test_cli.c -- the apphost binary: flags, exit codes, signals. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "helpers.h"
#include "url.h"

static char *bin(void)
{
	char *b = getenv("APPHOST_BIN");

	cr_assert(b != NULL, "APPHOST_BIN not set (run via meson)");
	return b;
}

Test(cli, version)
{
	char *argv[] = {bin(), "--version", NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, NULL, &out), 0);
	cr_assert(strstr(out, "apphost ") == out, "%s", out);
	cr_assert(strstr(out, "ABI 1.3") != NULL, "%s", out);
	free(out);
}

Test(cli, help_lists_every_key_and_exit_codes)
{
	char *argv[] = {bin(), "--help", NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, NULL, &out), 0);
	for (const struct apphost_config_key *k = apphost_config_keys;
	     k->key != NULL; k++)
		cr_assert(strstr(out, k->key) != NULL, "%s missing", k->key);
	cr_assert(strstr(out, "APPHOST_POOL_SIZE") != NULL);
	cr_assert(strstr(out, "Exit status") != NULL);
	free(out);
}

Test(cli, usage_errors_exit_2)
{
	char *a1[] = {bin(), "--bogus", NULL};
	char *a2[] = {bin(), "--config", NULL};
	char *a3[] = {bin(), "stray", NULL};
	char *out;

	cr_assert_eq(run_cmd(a1, NULL, &out), 2);
	cr_assert(strstr(out, "--bogus") != NULL, "%s", out);
	free(out);
	cr_assert_eq(run_cmd(a2, NULL, NULL), 2);
	cr_assert_eq(run_cmd(a3, NULL, NULL), 2);
}

/* A DSN given where apphost takes none: refused, its password not echoed
 * (stderr is the journal under systemd). */
Test(cli, usage_errors_echo_no_password)
{
	char *args[][3] = {
	    {bin(), "--postgres-dsn=postgresql://gm:hunter2@db/gm", NULL},
	    {bin(), "postgresql://gm:hunter2@db/gm", NULL},
	    {bin(), "-Dpassword=hunter2", NULL},
	};
	char *out;

	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
		cr_assert_eq(run_cmd(args[i], NULL, &out), 2, "%s", args[i][1]);
		cr_expect(strstr(out, "hunter2") == NULL, "%s", out);
		cr_expect(i != 0 || strstr(out, "'--postgres-dsn'") != NULL,
			  "%s", out);
		free(out);
	}
}

static char env_comps[4096];

static char *const *env_with(const char *comps)
{
	static char *env[4];

	snprintf(env_comps, sizeof(env_comps), "APPHOST_COMPONENTS=%s", comps);
	env[0] = env_comps;
	env[1] = "APPHOST_REDIS_URL=redis://:hunter2@127.0.0.1:1/0";
	env[2] = "APPHOST_POSTGRES_DSN=host=127.0.0.1 port=1 password=hunter2";
	env[3] = NULL;
	return env;
}

Test(cli, check_good_exits_0)
{
	char *argv[] = {bin(), "--check", NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, env_with(comp_path("good")), &out), 0, "%s",
		     out);
	cr_assert(strstr(out, "component initialised name=good") != NULL, "%s",
		  out);
	cr_assert(strstr(out, "check passed") != NULL, "%s", out);
	cr_assert(strstr(out, "good started") == NULL, "started: %s", out);
	cr_assert(strstr(out, "hunter2") == NULL, "password logged: %s", out);
	cr_assert(strstr(out, "postgres=\"host=127.0.0.1 port=1\"") != NULL,
		  "%s", out);
	free(out);
}

/* --connect only with --check; a component without a check is said so. */
Test(cli, check_connect_without_a_component_check)
{
	char *alone[] = {bin(), "--connect", NULL};
	char *argv[] = {bin(), "--check", "--connect", NULL};
	char *out;

	cr_assert_eq(run_cmd(alone, env_with(comp_path("good")), &out), 2, "%s",
		     out);
	cr_assert(strstr(out, "--connect only goes with --check") != NULL, "%s",
		  out);
	free(out);
	cr_assert_eq(run_cmd(argv, env_with(comp_path("good")), &out), 0, "%s",
		     out);
	cr_assert(strstr(out, "component has no connected check name=good") !=
		      NULL,
		  "%s", out);
	cr_assert(strstr(out, "check passed") != NULL, "%s", out);
	free(out);
}

Test(cli, check_refused_exits_1)
{
	char *argv[] = {bin(), "--check", NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, env_with(comp_path("badmajor")), &out), 1);
	cr_assert(strstr(out, "ABI major 2, host supports 1") != NULL, "%s",
		  out);
	free(out);
}

Test(cli, missing_components_exit_1)
{
	char *argv[] = {bin(), "--check", NULL};
	char *env[] = {"APPHOST_COMPONENTS=", NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, env, &out), 1);
	cr_assert(strstr(out, "APPHOST_COMPONENTS") != NULL, "%s", out);
	free(out);
}

Test(cli, bad_url_named_without_password)
{
	char *argv[] = {bin(), "--check", NULL};
	char *env[] = {"APPHOST_COMPONENTS=x.so",
		       "APPHOST_REDIS_URL=redis://:hunter2@h:99999/0", NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, env, &out), 1);
	cr_assert(strstr(out, "key=APPHOST_REDIS_URL value=\"h:99999/0\" "
			      "err=\"port must be 1..65535\"") != NULL,
		  "%s", out);
	cr_assert(strstr(out, "hunter2") == NULL, "%s", out);
	free(out);
}

/* Each runs `apphost --check` with one value; `secret` must appear
 * nowhere in what it prints, `want` must. Arrays: a fresh process each. */
struct secret_case {
	char key[24];
	char value[48];
	int status;
	char want[64];
	char secret[16];
};

ParameterizedTestParameters(cli, secrets_never_printed)
{
	static struct secret_case cases[] = {
	    {"APPHOST_POSTGRES_DSN", "host=db password=Tr0ub&dor", 0,
	     "postgres=\"host=db\"", "dor"},
	    {"APPHOST_POSTGRES_DSN", "dbname='d'password=secret", 0,
	     "postgres=\"dbname=d\"", "secret"},
	    {"APPHOST_POSTGRES_DSN", "postgresql://h/db?pass%77ord=secret", 0,
	     "postgres=\"dbname=db host=h\"", "secret"},
	    {"APPHOST_POSTGRES_DSN", "postgresql://app:s3cr@t@host/db", 1,
	     "key=APPHOST_POSTGRES_DSN", "s3cr"},
	    {"APPHOST_POSTGRES_DSN", "postgres://u:p%zzword@h/d", 1,
	     "key=APPHOST_POSTGRES_DSN", "zzword"},
	    {"APPHOST_REDIS_URL", "redis:/:secret@h", 1,
	     "key=APPHOST_REDIS_URL", "secret"},
	    {"APPHOST_REDIS_URL", "redis//:secret@h/0", 1,
	     "key=APPHOST_REDIS_URL", "secret"},
	    {"APPHOST_REDIS_URL", "redis://:secret@h:1/0", 0, "redis=h:1/0 ",
	     "secret"},
	};
	return TABLE_PARAMS(struct secret_case, cases);
}

ParameterizedTest(struct secret_case *c, cli, secrets_never_printed)
{
	char *argv[] = {bin(), "--check", NULL};
	char comps[1024], kv[128];
	char *env[] = {comps, kv, NULL};
	char *out;

	snprintf(comps, sizeof(comps), "APPHOST_COMPONENTS=%s",
		 comp_path("good"));
	snprintf(kv, sizeof(kv), "%s=%s", c->key, c->value);
	cr_assert_eq(run_cmd(argv, env, &out), c->status, "%s", out);
	cr_assert(strstr(out, c->want) != NULL, "want %s: %s", c->want, out);
	cr_assert(strstr(out, c->secret) == NULL, "%s leaked: %s", c->secret,
		  out);
	free(out);
}

Test(cli, bad_log_settings_named)
{
	char *argv[] = {bin(), "--check", NULL};
	char *lv[] = {"APPHOST_COMPONENTS=x.so", "APPHOST_LOG_LEVEL=loud",
		      NULL};
	char *fm[] = {"APPHOST_COMPONENTS=x.so", "APPHOST_LOG_FORMAT=xml",
		      NULL};
	char *out;

	cr_assert_eq(run_cmd(argv, lv, &out), 1);
	cr_assert(strstr(out, "key=APPHOST_LOG_LEVEL value=\"loud\"") != NULL,
		  "%s", out);
	free(out);
	cr_assert_eq(run_cmd(argv, fm, &out), 1);
	cr_assert(strstr(out, "key=APPHOST_LOG_FORMAT value=\"xml\"") != NULL,
		  "%s", out);
	free(out);
}

Test(cli, config_file_and_bad_line)
{
	char path[600], env_cfg[700];
	char *argv[] = {bin(), "--check", "--config", path, NULL};
	char *env[] = {NULL};
	char *out;
	FILE *f;

	snprintf(path, sizeof(path), "%s/apphost.conf", tmp_dir());
	f = fopen(path, "we");
	fprintf(f, "# test\nAPPHOST_COMPONENTS = %s\nAPPHOST_LOG_LEVEL=debug\n",
		comp_path("good"));
	fclose(f);
	cr_assert_eq(run_cmd(argv, env, &out), 0, "%s", out);
	cr_assert(strstr(out, " debug ") != NULL, "level from file: %s", out);
	free(out);

	f = fopen(path, "ae");
	fprintf(f, "oops\n");
	fclose(f);
	cr_assert_eq(run_cmd(argv, env, &out), 1);
	snprintf(env_cfg, sizeof(env_cfg), "%s:4", path);
	cr_assert(strstr(out, env_cfg) != NULL, "%s", out);
	free(out);
}

/* Spawn apphost with stderr on a pipe. */
static pid_t spawn(char *const env[], int *errfd)
{
	char *argv[] = {bin(), NULL};

	return spawn_cmd(argv, env, false, errfd);
}

/* Read from fd into buf until `want` appears or timeout; true if found. */
static bool wait_for(int fd, char *buf, size_t cap, size_t *len,
		     const char *want, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int waited = 0;

	while (waited < timeout_ms) {
		if (strstr(buf, want) != NULL)
			return true;
		if (poll(&pfd, 1, 100) > 0) {
			ssize_t n = read(fd, buf + *len, cap - *len - 1);

			if (n <= 0)
				return strstr(buf, want) != NULL;
			*len += (size_t)n;
			buf[*len] = '\0';
		} else {
			waited += 100;
		}
	}
	return strstr(buf, want) != NULL;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	int status;

	for (int i = 0; i < timeout_ms / 20; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* A running apphost: its pid, its stderr pipe and what it wrote so far
 * (static in each test: the buffer is large). */
struct running {
	pid_t pid;
	int fd;
	size_t len;
	char buf[65536];
};

/* Read more of r's stderr until `want` appears or timeout; true if found. */
static bool running_wait(struct running *r, const char *want, int timeout_ms)
{
	return wait_for(r->fd, r->buf, sizeof(r->buf), &r->len, want,
			timeout_ms);
}

/*
 * Wait up to timeout_ms for r's apphost to exit, read the rest of its
 * stderr up to `last` (its final line of interest), close the pipe and
 * assert the exit code; r->buf keeps what it wrote.
 */
static void expect_exit(struct running *r, int want, int timeout_ms,
			const char *last)
{
	int rc = wait_exit(r->pid, timeout_ms);

	if (last != NULL)
		running_wait(r, last, 2000);
	close(r->fd);
	cr_assert_eq(rc, want, "exit %d:\n%s", rc, r->buf);
}

/* SIGTERM, and see that apphost began to stop. */
static void begin_stop(struct running *r)
{
	kill(r->pid, SIGTERM);
	cr_assert(running_wait(r, "stopping", 5000), "%s", r->buf);
}

/* Start apphost with env and read until it runs. */
static void start_running(struct running *r, char *const env[])
{
	r->pid = spawn(env, &r->fd);
	r->buf[0] = '\0';
	r->len = 0;
	cr_assert(running_wait(r, "apphost running", 10000),
		  "no 'running' line:\n%s", r->buf);
}

Test(cli, sigterm_stops_and_exits_0)
{
	static struct running r;

	start_running(&r, env_with(comp_path("good")));
	cr_assert(strstr(r.buf, "good good started") != NULL, "%s", r.buf);
	kill(r.pid, SIGTERM);
	expect_exit(&r, 0, 10000, "apphost stopped");
	cr_assert(strstr(r.buf, "stopping signal=SIGTERM") != NULL, "%s",
		  r.buf);
	cr_assert(strstr(r.buf, "good good stopped") != NULL, "%s", r.buf);
	cr_assert(strstr(r.buf, "hunter2") == NULL, "%s", r.buf);
}

Test(cli, sighup_logged_and_ignored)
{
	static struct running r;

	start_running(&r, env_with(comp_path("good")));
	kill(r.pid, SIGHUP);
	cr_assert(running_wait(&r, "hot swap not enabled", 5000), "%s", r.buf);
	kill(r.pid, SIGINT);
	expect_exit(&r, 0, 10000, NULL);
}

/* apphost with the slowstop component (stop takes stop_ms) and the given
 * APPHOST_SHUTDOWN_TIMEOUT_MS, running (as start_running). */
static void start_slowstop_ms(struct running *r, const char *stop_ms,
			      const char *timeout_ms)
{
	static char timeout[64], stop[64];
	char *env[] = {env_comps, stop, timeout, NULL};

	snprintf(stop, sizeof(stop), "TEST_SLOW_STOP_MS=%s", stop_ms);
	snprintf(timeout, sizeof(timeout), "APPHOST_SHUTDOWN_TIMEOUT_MS=%s",
		 timeout_ms);
	env_with(comp_path("slowstop"));
	start_running(r, env);
}

/* As start_slowstop_ms with a 20 s stop. */
static void start_slowstop(struct running *r, const char *timeout_ms)
{
	start_slowstop_ms(r, "20000", timeout_ms);
}

/* A SIGHUP (a terminal hang-up, systemd's ExecReload) while the
 * components stop must not kill the host half way through the stop. */
Test(cli, sighup_while_stopping_is_ignored)
{
	static struct running r;

	start_slowstop_ms(&r, "1500", "30000");
	begin_stop(&r);
	kill(r.pid, SIGHUP);
	expect_exit(&r, 0, 20000, "apphost stopped");
	cr_assert(strstr(r.buf, "component stopped name=slowstop") != NULL,
		  "%s", r.buf);
}

Test(cli, second_signal_exits_at_once)
{
	static struct running r;

	start_slowstop(&r, "30000");
	begin_stop(&r);
	kill(r.pid, SIGTERM);
	expect_exit(&r, 128 + SIGTERM, 5000, "second signal");
	cr_assert(strstr(r.buf, "second signal while stopping") != NULL, "%s",
		  r.buf);
}

Test(cli, stop_overrun_exits_1)
{
	static struct running r;

	start_slowstop(&r, "300");
	kill(r.pid, SIGTERM);
	expect_exit(&r, 1, 5000, "exiting with failure");
	cr_assert(strstr(r.buf, "overran its deadline") != NULL, "%s", r.buf);
}
