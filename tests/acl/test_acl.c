/*
 * Suite acl: health_events under a Redis ACL user. The user is created
 * by piping the line he_redis_acl_line writes (the one operations.md
 * documents) to redis-cli, as an operator would paste it; apphost then
 * leads, stands by, takes over from a killed leader and stops as that
 * user. A required command taken away is named and keeps the instance not
 * ready until it is given back (no restart); an optional one is a warning,
 * once, and the instance works on.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_needs.h"
#include "stream_redis.h"

static redisContext *redis;
static PGconn *pg;
static th_keys K;
static he_config cfg;
static char server_host[256];
static int server_port;
static char user[64], url[512];
static pid_t pids[2];
static char logs[2][128];

/* Send text to redis-cli (as the servers' admin); its output, malloc()ed. */
static char *redis_cli(const char *text)
{
	char cmd[512], tmp[] = "/tmp/apphost-acl-XXXXXX";
	int fd = mkstemp(tmp);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	snprintf(cmd, sizeof(cmd), "redis-cli -h '%s' -p %d < %s 2>&1",
		 server_host, server_port, tmp);
	FILE *p = popen(cmd, "r");
	cr_assert(p != NULL);
	char *out = calloc(1, 4096);
	size_t n = fread(out, 1, 4095, p);
	out[n] = '\0';
	pclose(p);
	unlink(tmp);
	return out;
}

/* The documented line for this test's keys, with our password, applied. */
static void create_user(const char *extra)
{
	char *line = he_redis_acl_line(&cfg, user, false);
	cr_assert(line != NULL);
	char *pw = strstr(line, ">PASSWORD");
	cr_assert(pw != NULL, "%s", line);
	char *text;
	cr_assert(asprintf(&text, "%.*s>s3cret%s%s%s\n", (int)(pw - line), line,
			   pw + strlen(">PASSWORD"), extra ? " " : "",
			   extra ? extra : "") > 0);
	char *out = redis_cli(text);
	cr_assert(strncmp(out, "OK", 2) == 0, "%s -> %s", text, out);
	free(out);
	free(text);
	free(line);
}

static void setup(void)
{
	rs_connect(&redis, &pg);
	if (strchr(getenv("APPHOST_REDIS_URL"), '@') != NULL)
		cr_skip_test("the server URL carries credentials: this suite "
			     "runs against scripts/services' open server");
	snprintf(server_host, sizeof(server_host), "%s", redis->tcp.host);
	server_port = redis->tcp.port;
	th_keys_init(&K, "acl");
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.stream, sizeof(cfg.stream), "%s", K.stream);
	snprintf(cfg.lobby_stream, sizeof(cfg.lobby_stream), "%s", K.lobby);
	snprintf(cfg.dead_stream, sizeof(cfg.dead_stream), "%s", K.dead);
	snprintf(cfg.offset_key, sizeof(cfg.offset_key), "%s", K.offset_key);
	snprintf(cfg.fence_key, sizeof(cfg.fence_key), "%s:fence",
		 K.offset_key);
	snprintf(user, sizeof(user), "he-acl-%d", (int)getpid());
	snprintf(url, sizeof(url),
		 "APPHOST_REDIS_URL=redis://%s:s3cret@%s:%d/0", user,
		 server_host, server_port);
	for (int i = 0; i < 2; i++) {
		pids[i] = 0;
		snprintf(logs[i], sizeof(logs[i]), "/tmp/apphost-acl-%d-%d.log",
			 (int)getpid(), i);
		unlink(logs[i]);
	}
}

static void teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (pids[i] > 0)
			ap_kill9(pids[i]);
	if (redis) {
		char text[128];
		snprintf(text, sizeof(text), "ACL DELUSER %s\n", user);
		free(redis_cli(text));
	}
	rs_disconnect(&redis, &pg);
}

TestSuite(acl, .init = setup, .fini = teardown, .timeout = 120);

static void spawn(int i)
{
	char id[64];
	snprintf(id, sizeof(id), "HEALTH_EVENTS_INSTANCE_ID=acl-%d", i);
	const char *const env[] = {id, url, "APPHOST_HTTP_ADDR=", NULL};
	pids[i] = ap_spawn_he(&K, logs[i], env);
}

static void feed_committed(const char *game)
{
	th_oom_committed(redis, &K, game, 20000);
}

Test(acl, the_documented_user_leads_stands_by_fails_over_and_stops)
{
	create_user(NULL);
	ap_two_instances_fail_over(&K, redis, pg, "acl", spawn, pids, logs);
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(ap_log_count(logs[i], "NOPERM", NULL), 0,
			     "%s: a command was refused", logs[i]);
		cr_expect_eq(ap_log_count(logs[i], "may not run", NULL), 0,
			     "%s: the check found something missing", logs[i]);
	}
}

/* The first "dependency failing" line names xadd on the lobby stream as
 * a refused permission; want gets that text. */
static void expect_xadd_named(char *want, size_t cap)
{
	char *line =
	    ap_wait_log(logs[0], "dependency failing", 1, pids[0], 20000);
	snprintf(want, cap, "xadd on key %s", K.lobby);
	cr_expect(strstr(line, want) != NULL, "names %s: %s", want, line);
	cr_expect(strstr(line, "code=permission denied") != NULL, "%s", line);
	free(line);
}

/* ACL SETUSER <user> <rule>, as the servers' admin. */
static void acl_set(const char *rule)
{
	char text[200];
	snprintf(text, sizeof(text), "ACL SETUSER %s %s\n", user, rule);
	free(redis_cli(text));
}

Test(acl, a_missing_required_command_is_named_and_clears_when_given)
{
	char want[300];
	create_user("-xadd");
	spawn(0);
	expect_xadd_named(want, sizeof(want));
	char *line =
	    ap_wait_log(logs[0], "the Redis ACL this configuration needs", 1,
			pids[0], 5000);
	cr_expect(strstr(line, "+xadd") != NULL, "%s", line);
	free(line);
	line = ap_wait_log(logs[0], "not ready reason=\"redis failing", 1,
			   pids[0], 5000);
	cr_expect(strstr(line, want) != NULL, "%s", line);
	free(line);

	acl_set("+xadd");
	free(ap_wait_log(logs[0], "dependency recovered", 1, pids[0], 20000));
	char g1[160];
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	th_insert_game(pg, g1, "running", 1);
	feed_committed(g1);
	cr_expect_eq(ap_terminate(pids[0]), 0);
	pids[0] = 0;
}

/*
 * A command taken away while it runs, refused inside the commit script
 * (where Redis names no command), is named all the same.
 */
Test(acl, a_command_refused_inside_the_commit_script_is_named)
{
	create_user(NULL);
	spawn(0);
	free(ap_wait_log(logs[0], "leadership acquired", 1, pids[0], 20000));
	free(ap_wait_log(logs[0], "no applied position yet", 1, pids[0], 20000));
	acl_set("-xadd");
	char want[300], g1[160];
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	th_insert_game(pg, g1, "running", 1);
	char *id = th_xadd(redis, K.stream, "game_id", g1, "event_type",
			   "container_oom", NULL);
	expect_xadd_named(want, sizeof(want));
	acl_set("+xadd");
	cr_assert(th_wait_offset(redis, K.offset_key, id, 20000),
		  "not committed once given back (log %s)", logs[0]);
	free(id);
	cr_expect_eq(ap_terminate(pids[0]), 0);
	pids[0] = 0;
}

/* apphost --check --connect as the user names what it may not run. */
Test(acl, check_connect_names_a_missing_command)
{
	create_user("-evalsha");
	setenv("APPHOST_REDIS_URL", url + strlen("APPHOST_REDIS_URL="), 1);
	setenv("APPHOST_COMPONENTS", getenv("HE_SO"), 1);
	setenv("HEALTH_EVENTS_STREAM", K.stream, 1);
	setenv("HEALTH_EVENTS_LOBBY_STREAM", K.lobby, 1);
	setenv("HEALTH_EVENTS_DEAD_LETTER_STREAM", K.dead, 1);
	setenv("HEALTH_EVENTS_OFFSET_LABEL", K.prefix, 1);
	setenv("APPHOST_HTTP_ADDR", "", 1);
	char *cmd;
	int rc;
	cr_assert(asprintf(&cmd, "'%s' --check --connect 2>&1",
			   getenv("APPHOST_BIN")) > 0);
	char *out = ap_capture(cmd, &rc);
	cr_expect_neq(rc, 0, "%s", out);
	cr_expect(strstr(out, "component check failed name=health_events") !=
			  NULL &&
		      strstr(out, "redis: user may not run evalsha") != NULL &&
		      strstr(out, "postgres: ok") != NULL,
		  "%s", out);
	free(out);
	free(cmd);
}

Test(acl, a_missing_optional_command_is_one_warning)
{
	create_user("-client|unblock");
	spawn(0);
	free(ap_wait_log(logs[0], "leadership acquired", 1, pids[0], 20000));
	char g1[160];
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	th_insert_game(pg, g1, "running", 1);
	feed_committed(g1);
	cr_expect_eq(ap_log_count(logs[0], "may not run an optional command",
				  "client|unblock", NULL),
		     1, "one warning (log %s)", logs[0]);
	cr_expect_eq(ap_log_count(logs[0], "dependency failing", NULL), 0);
	cr_expect_eq(ap_terminate(pids[0]), 0);
	pids[0] = 0;
}

/*
 * Without client|unblock the refusal is a permission, and the connection
 * that carried it is fine: given back whole, not as broken.
 */
Test(acl, a_refused_unblock_keeps_its_connection)
{
	create_user("-client|unblock");
	setenv("APPHOST_REDIS_URL", url + strlen("APPHOST_REDIS_URL="), 1);
	real_services *rs = rs_new();
	cr_assert(rs != NULL);
	cr_expect_eq(he_stream_redis_unblock(rs_services(rs), 1), HE_EPERM);
	cr_expect_eq(rs_broken_releases(rs), 0, "given back as broken");
	cr_expect_eq(rs_leases_out(rs), 0);
	rs_free(rs);
}

/* A user made from the line for odd key names may use exactly those. */
Test(acl, odd_key_names_are_granted_literally)
{
	snprintf(cfg.stream, sizeof(cfg.stream), "%s:in*[x]?", K.prefix);
	snprintf(cfg.dead_stream, sizeof(cfg.dead_stream), "%s:dead\"q\\",
		 K.prefix);
	create_user(NULL);
	const char *const keys[][2] = {
	    {cfg.stream, "OK"},
	    {cfg.dead_stream, "OK"},
	    {"in*[x]?", "no permissions"},
	};
	char other[300];
	snprintf(other, sizeof(other), "%s:inA[x]?", K.prefix);
	for (size_t i = 0; i < 4; i++) {
		const char *key = i < 3 ? keys[i][0] : other;
		const char *want = i < 3 ? keys[i][1] : "no permissions";
		redisReply *r =
		    th_cmd(redis, "ACL", "DRYRUN", user, "GET", key, NULL);
		cr_expect(r->str != NULL && strstr(r->str, want) != NULL,
			  "GET %s: %s, want %s", key, r->str ? r->str : "?",
			  want);
		freeReplyObject(r);
	}
}

/* operations.md shows the line for the default names, as written. */
Test(acl_docs, operations_md_shows_the_line_for_the_defaults, .init = NULL,
     .fini = NULL)
{
	he_config d;
	memset(&d, 0, sizeof(d));
	snprintf(d.stream, sizeof(d.stream), "runtime:health_events");
	snprintf(d.lobby_stream, sizeof(d.lobby_stream), "gm:lobby_events");
	snprintf(d.dead_stream, sizeof(d.dead_stream),
		 "runtime:health_events:dead");
	snprintf(d.offset_key, sizeof(d.offset_key),
		 "gamemaster:stream_offsets:health_events");
	snprintf(d.fence_key, sizeof(d.fence_key),
		 "gamemaster:stream_offsets:health_events:fence");
	char path[4096];
	snprintf(path, sizeof(path), "%s/docs/operations.md", SOURCE_ROOT);
	char *doc = ap_read_file(path);
	cr_assert(doc != NULL, "%s", path);
	for (int s = 0; s < 2; s++) {
		char *line = he_redis_acl_line(&d, "apphost", s == 1);
		cr_expect(strstr(doc, line) != NULL, "%s does not show:\n%s",
			  path, line);
		free(line);
	}
	free(doc);
}

/* Key names are literal in the ACL: glob characters escaped, and an
 * argument redis-cli would split or unquote is quoted. */
Test(acl_docs, key_patterns_are_literal_and_quoted)
{
	he_config d;
	memset(&d, 0, sizeof(d));
	snprintf(d.stream, sizeof(d.stream), "in*[x]?");
	snprintf(d.lobby_stream, sizeof(d.lobby_stream), "lobby events");
	snprintf(d.dead_stream, sizeof(d.dead_stream), "dead\"q");
	snprintf(d.offset_key, sizeof(d.offset_key), "in*[x]?");
	snprintf(d.fence_key, sizeof(d.fence_key), "back\\slash");
	char *line = he_redis_acl_line(&d, "app user", false);
	cr_assert_str_eq(
	    line,
	    "ACL SETUSER \"app user\" on >PASSWORD resetkeys "
	    "\"~in\\\\*\\\\[x\\\\]\\\\?\" ~lobby?events \"~dead\\\"q\" "
	    "\"~back\\\\\\\\slash\" resetchannels -@all +select +unwatch "
	    "+echo +ping +client|id +xread +get +eval +evalsha +script|load "
	    "+set +xadd +client|unblock +xinfo|stream +xrange +time");
	free(line);
}
