/* test_sentinel.c -- the Sentinel settings: parsing the list and the
 * master name (no server), and how apphost --check reports them. Talking
 * to real Sentinels is the failover suite's. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "pool_redis.h"
#include "pool_redis_int.h" /* white box: the discovery's state */
#include "sentinel.h"
#include "status.h"

struct good_case {
	const char *list;
	size_t n;
	const char *host[3];
	unsigned port[3];
};

Test(sentinel, list_parses)
{
	static const struct good_case cases[] = {
	    {"10.0.0.1:26380", 1, {"10.0.0.1"}, {26380}},
	    {"a:1, b:2 ,c", 3, {"a", "b", "c"}, {1, 2, 26379}},
	    {"[::1]:5,[fe80::1]", 2, {"::1", "fe80::1"}, {5, 26379}},
	    {" s.example:65535 ", 1, {"s.example"}, {65535}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct good_case *c = &cases[i];
		struct apphost_sentinel_addr *v;
		char err[256] = "";
		size_t n;

		cr_assert_eq(
		    apphost_sentinels_parse(c->list, &v, &n, err, sizeof(err)),
		    0, "%s: %s", c->list, err);
		cr_assert_eq(n, c->n, "%s", c->list);
		for (size_t k = 0; k < n; k++) {
			cr_expect_str_eq(v[k].host, c->host[k], "%s", c->list);
			cr_expect_eq(v[k].port, c->port[k], "%s", c->list);
		}
		free(v);
	}
}

Test(sentinel, list_refused_with_entry_and_reason)
{
	static const char *const cases[][2] = {
	    {"", "empty list"},
	    {"a:1,,b:2", "entry 2 '': empty entry"},
	    {"a:1, b:x", "entry 2 'b:x': port must be 1..65535"},
	    {"a:0", "entry 1 'a:0': port must be 1..65535"},
	    {"a:70000", "entry 1 'a:70000': port must be 1..65535"},
	    {"a:", "entry 1 'a:': port must be 1..65535"},
	    {":5", "entry 1 ':5': missing host"},
	    {"[::1:5", "entry 1 '[::1:5': bad [IPv6] host"},
	    {"[::1]x", "entry 1 '[::1]x': junk after [IPv6] host"},
	    {"a b:1", "entry 1 'a b:1': blank inside host"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct apphost_sentinel_addr *v = (void *)1;
		char err[256] = "";
		size_t n = 9;

		cr_assert_eq(apphost_sentinels_parse(cases[i][0], &v, &n, err,
						     sizeof(err)),
			     APPHOST_EINVAL, "%s", cases[i][0]);
		cr_expect(strstr(err, cases[i][1]) != NULL, "%s: %s",
			  cases[i][0], err);
		cr_expect_null(v);
		cr_expect_eq(n, 0);
	}
}

Test(sentinel, too_many_entries_refused)
{
	char list[64 * 8 + 16] = "", err[256];
	struct apphost_sentinel_addr *v;
	size_t n;

	for (int i = 0; i < APPHOST_SENTINEL_MAX + 1; i++)
		strcat(list, i ? ",h:1" : "h:1");
	cr_assert_eq(apphost_sentinels_parse(list, &v, &n, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_expect(strstr(err, "65 entries, at most 64") != NULL, "%s", err);
}

Test(sentinel, master_name_checked)
{
	char err[256], long_name[200];

	memset(long_name, 'm', 129);
	long_name[129] = '\0';
	cr_expect_eq(apphost_sentinel_master_check("mymaster", err, 256), 0);
	cr_expect_eq(apphost_sentinel_master_check("", err, 256),
		     APPHOST_EINVAL);
	cr_expect_eq(apphost_sentinel_master_check("a b", err, 256),
		     APPHOST_EINVAL);
	cr_expect(strstr(err, "blank") != NULL, "%s", err);
	cr_expect_eq(apphost_sentinel_master_check(long_name, err, 256),
		     APPHOST_EINVAL);
	long_name[128] = '\0';
	cr_expect_eq(apphost_sentinel_master_check(long_name, err, 256), 0);
}

/* ---- apphost --check ----------------------------------------------------- */

static char *apphost(void)
{
	char *b = getenv("APPHOST_BIN");

	cr_assert_not_null(b, "APPHOST_BIN must be set by meson");
	return b;
}

/* Run apphost --check with the good component and `extra` settings. */
static int check_with(const char *const *extra, char **out)
{
	static char comps[4096];
	char *argv[] = {apphost(), "--check", NULL};
	char *env[16];
	size_t n = 0;

	snprintf(comps, sizeof(comps), "APPHOST_COMPONENTS=%s",
		 comp_path("good"));
	env[n++] = comps;
	env[n++] = "APPHOST_POSTGRES_DSN=host=127.0.0.1 port=1";
	for (; *extra != NULL && n < 15; extra++)
		env[n++] = (char *)*extra;
	env[n] = NULL;
	return run_cmd(argv, env, out);
}

Test(sentinel, check_shows_the_sentinel_set_never_a_password)
{
	const char *env[] = {
	    "APPHOST_REDIS_URL=redis://:hunter2@127.0.0.1:1/3",
	    "APPHOST_REDIS_SENTINELS=127.0.0.1:1, [::1]:2",
	    "APPHOST_REDIS_SENTINEL_MASTER=mymaster",
	    "APPHOST_REDIS_SENTINEL_PASSWORD=s3ntinel",
	    NULL,
	};
	char *out;

	cr_assert_eq(check_with(env, &out), 0, "%s", out);
	cr_expect(
	    strstr(out, " redis=sentinel:mymaster@127.0.0.1:1,[::1]:2/3 ") !=
		NULL,
	    "%s", out);
	cr_expect(strstr(out, "check passed") != NULL, "%s", out);
	cr_expect(strstr(out, "hunter2") == NULL, "password logged: %s", out);
	cr_expect(strstr(out, "s3ntinel") == NULL, "password logged: %s", out);
	free(out);
}

Test(sentinel, bad_settings_named_with_their_value)
{
	static const struct {
		const char *env[3];
		const char *want;
	} cases[] = {
	    {{"APPHOST_REDIS_SENTINELS=127.0.0.1:x",
	      "APPHOST_REDIS_SENTINEL_MASTER=m"},
	     "key=APPHOST_REDIS_SENTINELS value=\"127.0.0.1:x\" err=\"entry 1 "
	     "'127.0.0.1:x': port must be 1..65535\""},
	    {{"APPHOST_REDIS_SENTINELS=127.0.0.1:1"},
	     "key=APPHOST_REDIS_SENTINEL_MASTER value=\"\" err=\"required "
	     "with APPHOST_REDIS_SENTINELS\""},
	    {{"APPHOST_REDIS_SENTINELS=127.0.0.1:1",
	      "APPHOST_REDIS_SENTINEL_MASTER=my master"},
	     "key=APPHOST_REDIS_SENTINEL_MASTER value=\"my master\""},
	    {{"APPHOST_REDIS_SENTINEL_MASTER=m"},
	     "key=APPHOST_REDIS_SENTINELS value=\"\" err=\"required with "
	     "APPHOST_REDIS_SENTINEL_MASTER\""},
	    {{"APPHOST_REDIS_SENTINEL_PASSWORD=s3ntinel"},
	     "key=APPHOST_REDIS_SENTINELS value=\"\" err=\"required with "
	     "APPHOST_REDIS_SENTINEL_PASSWORD\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out;

		cr_assert_eq(check_with(cases[i].env, &out), 1, "case %zu: %s",
			     i, out);
		cr_expect(strstr(out, cases[i].want) != NULL, "case %zu: %s", i,
			  out);
		cr_expect(strstr(out, "s3ntinel") == NULL, "%s", out);
		free(out);
	}
}

/* ---- readiness follows the last discovery ------------------------------- */

struct discovery {
	struct apphost_redis_pool *p;
	pthread_barrier_t *go;
	bool known;
};

static void *discover_at_once(void *arg)
{
	struct discovery *d = arg;

	pthread_barrier_wait(d->go);
	apphost_redis_primary_state(d->p, d->known, "10.0.0.1:6379",
				    "no Sentinel answered");
	return NULL;
}

/* Whether /readyz has a failing "redis" line. */
static bool redis_not_ready(void)
{
	static struct apphost_status st;

	apphost_status_get(&st);
	for (size_t i = 0; i < st.n; i++)
		if (strcmp(st.line[i].who, "redis") == 0)
			return true;
	return false;
}

/*
 * Two threads' discoveries at once, one finding the primary and one
 * not: whichever the pool recorded last, /readyz says the same, never
 * "no primary known" while the pool knows one (nor ready while it does
 * not).
 */
Test(sentinel, readiness_agrees_with_the_pool_after_racing_discoveries,
     .timeout = 60)
{
	const struct apphost_redis_sentinel sen = {"127.0.0.1:1", "mymaster",
						   NULL};
	struct apphost_redis_pool *p = NULL;
	char err[256];

	cr_assert_eq(apphost_redis_pool_new_sentinel("redis://127.0.0.1:1/0",
						     &sen, 2, &p, err,
						     sizeof(err)),
		     0, "%s", err);
	log_capture_start();
	for (int round = 0; round < 5000; round++) {
		pthread_barrier_t go;
		pthread_t t[2];
		struct discovery d[2] = {{p, &go, false}, {p, &go, true}};
		bool known;

		pthread_barrier_init(&go, NULL, 2);
		for (int k = 0; k < 2; k++)
			cr_assert_eq(pthread_create(&t[k], NULL,
						    discover_at_once, &d[k]),
				     0);
		for (int k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		pthread_barrier_destroy(&go);
		pthread_mutex_lock(&p->mu);
		known = p->state == PRIMARY_KNOWN;
		pthread_mutex_unlock(&p->mu);
		cr_assert_eq(redis_not_ready(), !known,
			     "round %d: the pool %s, /readyz says %s", round,
			     known ? "knows a primary" : "knows none",
			     known ? "it knows none" : "ready");
	}
	free(log_captured());
	apphost_redis_pool_free(p);
}
