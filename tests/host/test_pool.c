/* test_pool.c -- leases: the generic pool with fake connections (no
 * server), then the Redis and PostgreSQL pools against real servers. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "helpers.h"
#include "pool.h"
#include "pool_pg.h"
#include "pool_redis.h"
#include "services.h"
#include "url.h"

/* ---- fake connections ---------------------------------------------------- */

struct fake {
	atomic_int connects, closes;
	atomic_bool down;
	atomic_bool stale; /* prepare fails */
	atomic_int next_id;
	/* while set, connect / prepare wait (counted in in_*) */
	atomic_bool hold_connect, hold_prepare;
	atomic_int in_connect, in_prepare;
	atomic_int prepares, new_lessees; /* prepare calls, and how many
					     were told the lessee changed */
};

/* Wait while *hold is set, counted in *in. */
static void held(atomic_bool *hold, atomic_int *in)
{
	atomic_fetch_add(in, 1);
	while (atomic_load(hold))
		usleep(1000);
}

/* Wait until *n >= want (a few seconds at most). */
static void await_count(atomic_int *n, int want)
{
	for (int i = 0; i < 5000 && atomic_load(n) < want; i++)
		usleep(1000);
	cr_assert_geq(atomic_load(n), want);
}

static int fake_connect(void *arg, uint32_t timeout_ms, void **conn, char *err,
			size_t errlen)
{
	struct fake *f = arg;
	int *c;

	atomic_fetch_add(&f->connects, 1);
	held(&f->hold_connect, &f->in_connect);
	if (atomic_load(&f->down)) {
		snprintf(err, errlen, "Connection refused");
		return APPHOST_ECONN;
	}
	c = malloc(sizeof(*c));
	*c = atomic_fetch_add(&f->next_id, 1) + 1;
	*conn = c;
	return 0;
}

static int fake_prepare(void *arg, void *conn, bool new_lessee,
			uint32_t timeout_ms)
{
	struct fake *f = arg;

	(void)timeout_ms;
	held(&f->hold_prepare, &f->in_prepare);
	atomic_fetch_add(&f->prepares, 1);
	if (new_lessee)
		atomic_fetch_add(&f->new_lessees, 1);
	return atomic_load(&f->stale) ? APPHOST_EIO : 0;
}

static void fake_close(void *arg, void *conn)
{
	struct fake *f = arg;

	atomic_fetch_add(&f->closes, 1);
	free(conn);
}

static const struct apphost_pool_ops fake_ops = {
    .kind = "fake",
    .connect = fake_connect,
    .prepare = fake_prepare,
    .close = fake_close,
};

TestSuite(pool, .init = log_capture_start);

Test(pool, leases_are_distinct_and_reused)
{
	struct fake f = {0};
	struct apphost_pool *p;
	void *a, *b, *c;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 2, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &a), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &b), 0);
	cr_assert_neq(a, b);
	cr_assert_eq(apphost_pool_leased(p), 2);
	apphost_pool_release(p, a, "t", false);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &c), 0);
	cr_assert_eq(c, a, "an idle connection is reused");
	cr_assert_eq(atomic_load(&f.connects), 2, "connections made lazily");
	apphost_pool_release(p, b, "t", false);
	apphost_pool_release(p, c, "t", false);
	apphost_pool_release(p, NULL, "t", false);
	apphost_pool_free(p);
	cr_assert_eq(atomic_load(&f.closes), 2);
	apphost_pool_free(NULL);
}

Test(pool, exhaustion_waits_then_times_out)
{
	struct fake f = {0};
	struct apphost_pool *p;
	void *a, *b, *c = (void *)1;
	uint64_t t0, ms;
	char *log;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 2, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &a), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &b), 0);
	t0 = apphost_now_ns();
	cr_assert_eq(apphost_pool_lease(p, 300, "waiter", &c),
		     APPHOST_ETIMEDOUT);
	ms = (apphost_now_ns() - t0) / 1000000u;
	cr_assert_null(c);
	cr_assert_geq(ms, 250, "gave up after %llu ms", (unsigned long long)ms);
	cr_assert_lt(ms, 3000, "waited %llu ms", (unsigned long long)ms);
	log = log_captured();
	cr_assert(strstr(log, "error waiter fake pool exhausted: 2 of 2 leased "
			      "for 300 ms") != NULL,
		  "%s", log);
	free(log);
	apphost_pool_release(p, a, "t", false);
	apphost_pool_release(p, b, "t", false);
	apphost_pool_free(p);
}

struct releaser {
	struct apphost_pool *p;
	void *conn;
};

static void *release_later(void *arg)
{
	struct releaser *r = arg;

	usleep(100 * 1000);
	apphost_pool_release(r->p, r->conn, "t", false);
	return NULL;
}

Test(pool, waiter_gets_released_connection)
{
	struct fake f = {0};
	struct apphost_pool *p;
	struct releaser r;
	pthread_t t;
	void *a, *b;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 1, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &a), 0);
	r.p = p;
	r.conn = a;
	pthread_create(&t, NULL, release_later, &r);
	cr_assert_eq(apphost_pool_lease(p, 5000, "t", &b), 0);
	cr_assert_eq(b, a);
	pthread_join(t, NULL);
	apphost_pool_release(p, b, "t", false);
	apphost_pool_free(p);
}

Test(pool, broken_release_reconnects)
{
	struct fake f = {0};
	struct apphost_pool *p;
	void *a, *b;
	int ida;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 1, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &a), 0);
	ida = *(int *)a;
	apphost_pool_release(p, a, "t", true);
	cr_assert_eq(atomic_load(&f.closes), 1);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &b), 0);
	cr_assert_neq(*(int *)b, ida);
	cr_assert_eq(atomic_load(&f.connects), 2);
	/* A stale idle connection is replaced at lease time too. */
	apphost_pool_release(p, b, "t", false);
	atomic_store(&f.stale, true);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &a), 0);
	cr_assert_eq(atomic_load(&f.connects), 3);
	apphost_pool_release(p, a, "t", false);
	apphost_pool_free(p);
}

Test(pool, down_server_backs_off_and_logs_once)
{
	struct fake f = {0};
	struct apphost_pool *p;
	void *a;
	char *log;
	const char *s;
	int n = 0;

	atomic_store(&f.down, true);
	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:9", 2, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 1000, "t", &a), APPHOST_ECONN);
	cr_assert_null(a);
	/* Inside the backoff window: fails at once, no new attempt. */
	for (int i = 0; i < 20; i++)
		cr_assert_eq(apphost_pool_lease(p, 1000, "t", &a),
			     APPHOST_ECONN);
	cr_assert_eq(atomic_load(&f.connects), 1);
	usleep(150 * 1000); /* first window: 100 ms */
	cr_assert_eq(apphost_pool_lease(p, 1000, "t", &a), APPHOST_ECONN);
	cr_assert_eq(atomic_load(&f.connects), 2);
	atomic_store(&f.down, false);
	usleep(250 * 1000); /* second window: 200 ms */
	cr_assert_eq(apphost_pool_lease(p, 1000, "t", &a), 0);
	apphost_pool_release(p, a, "t", false);
	log = log_captured();
	for (s = log; (s = strstr(s, "fake unreachable addr=fake:9")) != NULL;
	     s++)
		n++;
	cr_assert_eq(n, 1, "logged %d times:\n%s", n, log);
	cr_assert(strstr(log, "err=\"Connection refused\"") != NULL, "%s", log);
	cr_assert(strstr(log, "fake reachable again addr=fake:9") != NULL, "%s",
		  log);
	free(log);
	apphost_pool_free(p);
}

struct leaser {
	struct apphost_pool *p;
	int rc;
	uint64_t ms; /* how long the lease took */
	atomic_bool done;
};

static void *lease_thread(void *arg)
{
	struct leaser *l = arg;
	uint64_t t0 = apphost_now_ns();
	void *c = NULL;

	l->rc = apphost_pool_lease(l->p, 10000, "t", &c);
	l->ms = (apphost_now_ns() - t0) / 1000000u;
	if (c != NULL)
		apphost_pool_release(l->p, c, "t", false);
	atomic_store(&l->done, true);
	return NULL;
}

/*
 * A lease that drops a stale idle connection while the server is in its
 * backoff window frees a slot: a lease waiting for one must be woken (it
 * fails at once with APPHOST_ECONN) instead of sleeping out its timeout.
 */
Test(pool, stale_drop_in_backoff_wakes_waiter)
{
	struct fake f = {0};
	struct apphost_pool *p;
	struct leaser probe = {0}, stale = {0}, waiter = {0};
	bool woken;
	pthread_t tp, ts, tw;
	void *a, *b;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 2, &p), 0);
	probe.p = stale.p = waiter.p = p;
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &a), 0); /* slot 0 */
	/* Two failed connects on slot 1: the next window is 400 ms. */
	atomic_store(&f.down, true);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &b), APPHOST_ECONN);
	usleep(150 * 1000);
	cr_assert_eq(apphost_pool_lease(p, 100, "t", &b), APPHOST_ECONN);
	usleep(250 * 1000);
	/* A probe holds slot 1 connecting; slot 0 goes idle. */
	atomic_store(&f.hold_connect, true);
	pthread_create(&tp, NULL, lease_thread, &probe);
	await_count(&f.in_connect, 4);
	apphost_pool_release(p, a, "t", false);
	/* A lease takes idle slot 0, finds it stale; one waits meanwhile. */
	atomic_store(&f.stale, true);
	atomic_store(&f.hold_prepare, true);
	pthread_create(&ts, NULL, lease_thread, &stale);
	await_count(&f.in_prepare, 1);
	pthread_create(&tw, NULL, lease_thread, &waiter);
	usleep(50 * 1000);
	atomic_store(&f.hold_prepare, false);
	/* Its lease timeout is 10 s: 5 s tells a wake-up from sleeping it
	 * out (after which it would probe, and wait on the held connect). */
	for (int i = 0; i < 500 && !atomic_load(&waiter.done); i++)
		usleep(10 * 1000);
	woken = atomic_load(&waiter.done);
	atomic_store(&f.hold_connect, false);
	pthread_join(ts, NULL);
	pthread_join(tw, NULL);
	pthread_join(tp, NULL);
	cr_assert(woken, "the waiter was not woken when a slot came free");
	cr_assert_eq(stale.rc, APPHOST_ECONN);
	cr_assert_eq(waiter.rc, APPHOST_ECONN);
	cr_assert_eq(probe.rc, APPHOST_ECONN);
	cr_assert_eq(apphost_pool_leased(p), 0);
	apphost_pool_free(p);
}

Test(pool, foreign_release_ignored)
{
	struct fake f = {0};
	struct apphost_pool *p;
	int x;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 1, &p), 0);
	cr_assert_eq(apphost_pool_release(p, &x, "t", true), APPHOST_EINVAL);
	cr_assert_eq(atomic_load(&f.closes), 0);
	apphost_pool_free(p);
}

/* A lease belongs to its holder: anyone else's release is refused. */
Test(pool, release_by_another_holder_refused)
{
	struct fake f = {0};
	struct apphost_pool *p;
	void *a;
	char *log;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 1, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "alpha", &a), 0);
	cr_assert_eq(apphost_pool_release(p, a, "beta", true), APPHOST_EINVAL);
	cr_assert_eq(apphost_pool_leased(p), 1, "still alpha's");
	cr_assert_eq(atomic_load(&f.closes), 0, "not closed under alpha");
	log = log_captured();
	cr_assert(strstr(log, "error beta release refused: the connection is "
			      "leased to another holder pool=fake "
			      "holder=alpha") != NULL,
		  "%s", log);
	free(log);
	cr_assert_eq(apphost_pool_release(p, a, NULL, false), APPHOST_EINVAL,
		     "nor by the host");
	cr_assert_eq(apphost_pool_release(p, a, "alpha", false), 0);
	cr_assert_eq(apphost_pool_leased(p), 0);
	cr_assert_eq(apphost_pool_release(p, a, "alpha", false), APPHOST_EINVAL,
		     "a second release of the same lease");
	apphost_pool_free(p);
}

/* prepare hears whether the lessee changed, to reset session state. */
Test(pool, prepare_told_when_the_lessee_changes)
{
	struct fake f = {0};
	struct apphost_pool *p;
	void *a;

	cr_assert_eq(apphost_pool_new(&fake_ops, &f, "fake:0", 1, &p), 0);
	cr_assert_eq(apphost_pool_lease(p, 100, "alpha", &a), 0);
	cr_assert_eq(atomic_load(&f.prepares), 0, "a new connection is clean");
	apphost_pool_release(p, a, "alpha", false);
	cr_assert_eq(apphost_pool_lease(p, 100, "alpha", &a), 0);
	cr_assert_eq(atomic_load(&f.prepares), 1);
	cr_assert_eq(atomic_load(&f.new_lessees), 0, "same lessee");
	apphost_pool_release(p, a, "alpha", false);
	cr_assert_eq(apphost_pool_lease(p, 100, "beta", &a), 0);
	cr_assert_eq(atomic_load(&f.new_lessees), 1, "beta after alpha");
	apphost_pool_release(p, a, "beta", false);
	cr_assert_eq(apphost_pool_lease(p, 100, "alpha", &a), 0);
	cr_assert_eq(atomic_load(&f.new_lessees), 2, "alpha after beta");
	apphost_pool_release(p, a, "alpha", false);
	apphost_pool_free(p);
}

/* ---- Redis --------------------------------------------------------------- */

TestSuite(redis, .init = log_capture_start);

static long long redis_client_id(redisContext *c)
{
	const char *argv[] = {"CLIENT", "ID"};
	redisReply *r = redisCommandArgv(c, 2, argv, NULL);
	long long id;

	cr_assert_not_null(r, "CLIENT ID: %s", c->errstr);
	cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
	id = r->integer;
	freeReplyObject(r);
	return id;
}

static long rcv_timeout_ms(redisContext *c)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	cr_assert_eq(getsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len), 0);
	return (long)tv.tv_sec * 1000 + (long)tv.tv_usec / 1000;
}

Test(redis, leases_exclusive_and_broken_reconnects)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_redis_pool *p;
	redisContext *a, *b, *c;
	char err[256];
	long long ida, idb;

	cr_assert_eq(apphost_redis_pool_new(url, 2, &p, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &a), 0);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &b), 0);
	cr_assert_neq(a, b);
	ida = redis_client_id(a);
	idb = redis_client_id(b);
	cr_assert_neq(ida, idb, "two leases share a server connection");
	cr_assert_eq(rcv_timeout_ms(a), 5000, "fresh lease: command timeout");
	/* A lessee's own timeout is reset at the next lease. */
	redisSetTimeout(b, (struct timeval){.tv_sec = 60});
	cr_assert_eq(apphost_redis_pool_lease(p, 200, "t", &c),
		     APPHOST_ETIMEDOUT);
	apphost_redis_pool_release(p, a, "t", true);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &c), 0);
	cr_assert_neq(redis_client_id(c), ida, "broken release reused");
	apphost_redis_pool_release(p, c, "t", false);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &a), 0);
	cr_assert_eq(a, c, "a healthy release is reused");
	apphost_redis_pool_release(p, a, "t", false);
	apphost_redis_pool_release(p, b, "t", false);
	cr_assert_eq(apphost_redis_pool_leased(p), 0);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &a), 0);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &b), 0);
	cr_assert_eq(rcv_timeout_ms(a), 5000);
	cr_assert_eq(rcv_timeout_ms(b), 5000);
	apphost_redis_pool_release(p, a, "t", false);
	apphost_redis_pool_release(p, b, "t", false);
	apphost_redis_pool_free(p);
}

Test(redis, through_services_table)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_ctx *ctx = test_ctx_new();
	struct apphost_svc_host h = {.ctx = ctx, .name = "svc"};
	apphost_services svc;
	redisContext *c;
	char err[256];

	apphost_redis_pool_free(ctx->redis);
	cr_assert_eq(
	    apphost_redis_pool_new(url, 2, &ctx->redis, err, sizeof(err)), 0);
	apphost_services_fill(&svc, &h);
	cr_assert_eq(svc.size, sizeof(svc));
	cr_assert_eq(svc.redis_lease(svc.host, 2000, &c), 0);
	cr_assert_gt(redis_client_id(c), 0);
	svc.redis_release(svc.host, c, false);
	svc.redis_release(svc.host, NULL, false);
	cr_assert_gt(svc.now_ns(svc.host), 0);
	test_ctx_free(ctx);
}

/*
 * A refused AUTH reaches a component built for ABI 1.3 as APPHOST_EAUTH,
 * and one built before as the APPHOST_ECONN it always got.
 */
Test(redis, lease_codes_follow_the_components_abi)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_ctx *ctx = test_ctx_new();
	char with_pw[512], err[256];
	redisContext *c;

	if (strchr(url, '@') != NULL)
		cr_skip_test("server URL already carries credentials");
	snprintf(with_pw, sizeof(with_pw), "redis://:hunter2@%s", url + 8);
	apphost_redis_pool_free(ctx->redis);
	cr_assert_eq(
	    apphost_redis_pool_new(with_pw, 2, &ctx->redis, err, sizeof(err)),
	    0, "%s", err);
	for (unsigned minor = 2; minor <= 3; minor++) {
		struct apphost_svc_host h = {
		    .ctx = ctx, .name = "svc", .abi_minor = minor};
		apphost_services svc;

		apphost_services_fill(&svc, &h);
		cr_expect_eq(svc.redis_lease(svc.host, 2000, &c),
			     minor < 3 ? APPHOST_ECONN : APPHOST_EAUTH,
			     "ABI 1.%u", minor);
	}
	test_ctx_free(ctx);
}

Test(redis, unreachable_port_fails_fast)
{
	struct apphost_redis_pool *p;
	redisContext *c;
	char err[256];
	uint64_t t0, ms;
	char *log;

	cr_assert_eq(apphost_redis_pool_new("redis://:hunter2@127.0.0.1:1/0", 2,
					    &p, err, sizeof(err)),
		     0, "%s", err);
	t0 = apphost_now_ns();
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &c), APPHOST_ECONN);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &c), APPHOST_ECONN);
	ms = (apphost_now_ns() - t0) / 1000000u;
	cr_assert_lt(ms, 1500, "took %llu ms", (unsigned long long)ms);
	cr_assert_null(c);
	log = log_captured();
	cr_assert(strstr(log, "redis unreachable addr=127.0.0.1:1/0") != NULL,
		  "%s", log);
	cr_assert(strstr(log, "hunter2") == NULL, "password logged: %s", log);
	free(log);
	apphost_redis_pool_free(p);
}

/* Run a command given as NULL-terminated strings; asserts a reply. */
static redisReply *rcmd(redisContext *c, ...)
{
	const char *argv[8];
	int argc = 0;
	va_list ap;
	redisReply *r;

	va_start(ap, c);
	while (argc < 8 && (argv[argc] = va_arg(ap, const char *)) != NULL)
		argc++;
	va_end(ap);
	r = redisCommandArgv(c, argc, argv, NULL);
	cr_assert_not_null(r, "%s: %s", argv[0], c->errstr);
	return r;
}

/* The db the server says this connection uses (CLIENT INFO). */
static long redis_db(redisContext *c)
{
	redisReply *r = rcmd(c, "CLIENT", "INFO", NULL);
	const char *db;
	long n;

	cr_assert_eq(r->type, REDIS_REPLY_STRING);
	db = strstr(r->str, " db=");
	cr_assert_not_null(db, "%s", r->str);
	n = strtol(db + 4, NULL, 10);
	freeReplyObject(r);
	return n;
}

/*
 * A refused AUTH and an ACL's NOPERM on SELECT are their own codes, in
 * the lease's return and in the log, also while the pool backs off: they
 * are not an outage.
 */
Test(redis, refused_credentials_and_privileges_have_their_own_codes)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_redis_url u;
	struct apphost_redis_pool *p;
	redisContext *admin, *c;
	char err[256], user[64], bad[400], nosel[400];
	char *log;

	cr_assert_eq(apphost_redis_url_parse(url, &u, err, sizeof(err)), 0);
	admin = redisConnect(u.host, u.port);
	cr_assert(admin != NULL && !admin->err);
	if (u.password != NULL)
		freeReplyObject(rcmd(admin, "AUTH", u.password, NULL));
	snprintf(user, sizeof(user), "he-pool-%d", (int)getpid());
	freeReplyObject(rcmd(admin, "ACL", "SETUSER", user, "on", ">pw", "~*",
			     "+@all", "-select", NULL));
	snprintf(bad, sizeof(bad), "redis://%s:wrong@%s:%u/0", user, u.host,
		 (unsigned)u.port);
	snprintf(nosel, sizeof(nosel), "redis://%s:pw@%s:%u/1", user, u.host,
		 (unsigned)u.port);

	cr_assert_eq(apphost_redis_pool_new(bad, 1, &p, err, sizeof(err)), 0);
	cr_expect_eq(apphost_redis_pool_lease(p, 2000, "t", &c), APPHOST_EAUTH);
	cr_expect_eq(apphost_redis_pool_lease(p, 2000, "t", &c), APPHOST_EAUTH,
		     "in the backoff too");
	apphost_redis_pool_free(p);
	cr_assert_eq(apphost_redis_pool_new(nosel, 1, &p, err, sizeof(err)), 0);
	cr_expect_eq(apphost_redis_pool_lease(p, 2000, "t", &c), APPHOST_EPERM);
	apphost_redis_pool_free(p);
	log = log_captured();
	cr_expect(strstr(log, "redis refuses authentication") != NULL &&
		      strstr(log, "code=EAUTH") != NULL,
		  "%s", log);
	cr_expect(strstr(log, "redis refuses a permission") != NULL &&
		      strstr(log, "code=EPERM") != NULL &&
		      strstr(log, "NOPERM") != NULL,
		  "%s", log);
	cr_expect(strstr(log, "redis unreachable") == NULL, "%s", log);
	free(log);
	freeReplyObject(rcmd(admin, "ACL", "DELUSER", user, NULL));
	redisFree(admin);
	apphost_redis_url_clear(&u);
}

/* A lessee's SELECT does not follow the connection to the next lease. */
Test(redis, lease_selects_the_configured_db_again)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_redis_pool *p;
	redisContext *a, *b;
	char err[256], u3[512];
	const char *slash = strrchr(url, '/');

	cr_assert(slash != NULL && slash > url + 8, "%s", url);
	snprintf(u3, sizeof(u3), "%.*s/3", (int)(slash - url), url);
	cr_assert_eq(apphost_redis_pool_new(u3, 1, &p, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "alpha", &a), 0);
	cr_assert_eq(redis_db(a), 3);
	freeReplyObject(rcmd(a, "SELECT", "7", NULL));
	cr_assert_eq(redis_db(a), 7);
	apphost_redis_pool_release(p, a, "alpha", false);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "alpha", &b), 0);
	cr_assert_eq(b, a, "the connection itself is kept");
	cr_assert_eq(redis_db(b), 3, "db 3 selected again");
	apphost_redis_pool_release(p, b, "alpha", false);
	apphost_redis_pool_free(p);
}

/* An open MULTI, a reply never read, a command never sent: each would
 * reach the next lessee; the connection is replaced instead. */
Test(redis, lease_discards_open_multi_and_unread_replies)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_redis_pool *p;
	redisContext *a, *b;
	const char *multi[] = {"MULTI"}, *ping[] = {"PING"};
	char err[256];
	long long id;
	int done;

	cr_assert_eq(apphost_redis_pool_new(url, 1, &p, err, sizeof(err)), 0,
		     "%s", err);
	for (int how = 0; how < 3; how++) {
		cr_assert_eq(apphost_redis_pool_lease(p, 2000, "alpha", &a), 0);
		id = redis_client_id(a);
		if (how == 0) { /* MULTI left open */
			freeReplyObject(redisCommandArgv(a, 1, multi, NULL));
		} else { /* PING sent, reply unread / not even sent */
			redisAppendCommandArgv(a, 1, ping, NULL);
			if (how == 1) {
				do
					cr_assert_eq(redisBufferWrite(a, &done),
						     REDIS_OK);
				while (!done);
				usleep(50 * 1000); /* the PONG is on its way */
			}
		}
		apphost_redis_pool_release(p, a, "alpha", false);
		cr_assert_eq(apphost_redis_pool_lease(p, 2000, "alpha", &b), 0);
		cr_assert_neq(redis_client_id(b), id, "case %d: reused", how);
		redisReply *r = redisCommandArgv(b, 1, ping, NULL);

		cr_assert_not_null(r);
		cr_assert_eq(r->type, REDIS_REPLY_STATUS, "case %d", how);
		cr_assert_str_eq(r->str, "PONG");
		freeReplyObject(r);
		apphost_redis_pool_release(p, b, "alpha", false);
	}
	apphost_redis_pool_free(p);
}

/* Through the services table a lease is its component's: another
 * component's release is refused and the lease stays out. */
Test(redis, release_by_another_component_refused)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_ctx *ctx = test_ctx_new();
	struct apphost_svc_host ha = {.ctx = ctx, .name = "alpha"};
	struct apphost_svc_host hb = {.ctx = ctx, .name = "beta"};
	apphost_services sa, sb;
	redisContext *c;
	char err[256], *log;

	apphost_redis_pool_free(ctx->redis);
	cr_assert_eq(
	    apphost_redis_pool_new(url, 2, &ctx->redis, err, sizeof(err)), 0);
	apphost_services_fill(&sa, &ha);
	apphost_services_fill(&sb, &hb);
	cr_assert_eq(sa.redis_lease(sa.host, 2000, &c), 0);
	sb.redis_release(sb.host, c, true);
	cr_assert_eq(apphost_redis_pool_leased(ctx->redis), 1);
	cr_assert_gt(redis_client_id(c), 0, "still connected, still alpha's");
	log = log_captured();
	cr_assert(strstr(log, "beta release refused") != NULL, "%s", log);
	free(log);
	sa.redis_release(sa.host, c, false);
	cr_assert_eq(apphost_redis_pool_leased(ctx->redis), 0);
	test_ctx_free(ctx);
}

/* ---- PostgreSQL ---------------------------------------------------------- */

TestSuite(postgres, .init = log_capture_start);

static int pg_pid(PGconn *c)
{
	return PQbackendPID(c);
}

Test(postgres, leases_exclusive_and_broken_reconnects)
{
	const char *dsn = need_env("APPHOST_POSTGRES_DSN");
	struct apphost_pg_pool *p;
	PGconn *a, *b, *c;
	PGresult *r;
	char err[256];
	int pida;

	cr_assert_eq(apphost_pg_pool_new(dsn, 2, &p, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &a), 0);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &b), 0);
	cr_assert_neq(a, b);
	pida = pg_pid(a);
	cr_assert_neq(pida, pg_pid(b));
	cr_assert_eq(apphost_pg_pool_lease(p, 200, "t", &c), APPHOST_ETIMEDOUT);
	apphost_pg_pool_release(p, a, "t", true);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &c), 0);
	cr_assert_neq(pg_pid(c), pida, "broken release reused");
	/* Left in a transaction: replaced at the next lease. */
	r = PQexec(c, "BEGIN");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	pida = pg_pid(c);
	apphost_pg_pool_release(p, c, "t", false);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &a), 0);
	cr_assert_eq(PQtransactionStatus(a), PQTRANS_IDLE);
	cr_assert_neq(pg_pid(a), pida);
	apphost_pg_pool_release(p, a, "t", false);
	apphost_pg_pool_release(p, b, "t", false);
	apphost_pg_pool_free(p);
}

/*
 * An idle connection the server ended (a restart, a failover, a reset
 * link) is found at the lease, not by the lessee's first statement: the
 * same lessee gets a working one.
 */
Test(postgres, an_idle_connection_the_server_ended_is_not_leased)
{
	const char *dsn = need_env("APPHOST_POSTGRES_DSN");
	struct apphost_pg_pool *p;
	PGconn *a, *killer;
	PGresult *r;
	char err[256], sql[96];

	cr_assert_eq(apphost_pg_pool_new(dsn, 1, &p, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &a), 0);
	int pid = pg_pid(a);
	apphost_pg_pool_release(p, a, "t", false);
	killer = PQconnectdb(dsn);
	cr_assert_eq(PQstatus(killer), CONNECTION_OK, "%s",
		     PQerrorMessage(killer));
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	r = PQexec(killer, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQerrorMessage(killer));
	PQclear(r);
	PQfinish(killer);
	usleep(200 * 1000); /* the server's close reaches our socket */

	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &a), 0);
	cr_expect_neq(pg_pid(a), pid, "the ended connection was leased");
	r = PQexec(a, "SELECT 1");
	cr_expect_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQerrorMessage(a));
	PQclear(r);
	apphost_pg_pool_release(p, a, "t", false);
	apphost_pg_pool_free(p);
}

static char *pg_value(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	char *v;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql,
		     PQerrorMessage(c));
	v = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void pg_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql,
		     PQerrorMessage(c));
	PQclear(r);
}

static void expect_value(PGconn *c, const char *sql, const char *want)
{
	char *v = pg_value(c, sql);

	cr_expect_str_eq(v, want, "%s", sql);
	free(v);
}

/*
 * Session state stays with its lessee: the same component finds its
 * prepared statement again, another one gets the connection as new (no
 * temporary table shadowing a real one, no statement, default settings).
 */
Test(postgres, session_reset_when_the_lessee_changes)
{
	const char *dsn = need_env("APPHOST_POSTGRES_DSN");
	struct apphost_pg_pool *p;
	PGconn *a;
	char err[256];
	int pid;

	cr_assert_eq(apphost_pg_pool_new(dsn, 1, &p, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "alpha", &a), 0);
	pid = pg_pid(a);
	pg_ok(a, "CREATE TEMP TABLE hygiene_t (x int)");
	pg_ok(a, "PREPARE hygiene_s AS SELECT 1");
	pg_ok(a, "SET application_name = 'left-behind'");
	apphost_pg_pool_release(p, a, "alpha", false);

	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "alpha", &a), 0);
	cr_assert_eq(pg_pid(a), pid);
	expect_value(a, "SELECT count(*) FROM pg_prepared_statements", "1");
	apphost_pg_pool_release(p, a, "alpha", false);

	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "beta", &a), 0);
	cr_assert_eq(pg_pid(a), pid, "the connection itself is kept");
	expect_value(a, "SELECT to_regclass('pg_temp.hygiene_t')::text",
		     "(null)");
	expect_value(a, "SELECT count(*) FROM pg_prepared_statements", "0");
	expect_value(a, "SHOW application_name", "apphost");
	expect_value(a, "SHOW client_encoding", "UTF8"); /* kept by RESET */
	apphost_pg_pool_release(p, a, "beta", false);
	apphost_pg_pool_free(p);
}

/* Whatever the database's encoding and the DSN say, the text a component
 * sends is read as UTF-8: a UTF-8 game id finds its row in LATIN1. */
Test(postgres, client_encoding_is_utf8)
{
	const char *dsn = need_env("APPHOST_POSTGRES_DSN");
	const char *id = "g-\xc3\xa9t\xc3\xa9"; /* "g-été" in UTF-8 */
	struct apphost_pg_pool *p;
	PGconn *admin, *c;
	PGresult *r;
	char db[64], ddsn[1024], sql[256], err[256];
	const char *params[1] = {id};

	admin = PQconnectdb(dsn);
	cr_assert_eq(PQstatus(admin), CONNECTION_OK, "%s",
		     PQerrorMessage(admin));
	snprintf(db, sizeof(db), "hygiene_latin1_%ld", (long)getpid());
	snprintf(sql, sizeof(sql),
		 "CREATE DATABASE %s ENCODING 'LATIN1' TEMPLATE template0 "
		 "LC_COLLATE 'C' LC_CTYPE 'C'",
		 db);
	pg_ok(admin, sql);
	/* The server's DSN (conninfo or URI) as conninfo, on the new
	 * database, asking for LATIN1 too: the pool's UTF8 must win. */
	PQconninfoOption *o = PQconninfoParse(dsn, NULL);
	size_t used = 0;

	cr_assert_not_null(o);
	for (PQconninfoOption *k = o; k->keyword != NULL; k++)
		if (k->val != NULL && strcmp(k->keyword, "dbname") != 0)
			used +=
			    (size_t)snprintf(ddsn + used, sizeof(ddsn) - used,
					     "%s='%s' ", k->keyword, k->val);
	snprintf(ddsn + used, sizeof(ddsn) - used,
		 "dbname=%s client_encoding=LATIN1", db);
	PQconninfoFree(o);
	cr_assert_eq(apphost_pg_pool_new(ddsn, 1, &p, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &c), 0);
	expect_value(c, "SHOW client_encoding", "UTF8");
	pg_ok(c, "CREATE TABLE rows_t (game_id text PRIMARY KEY)");
	r = PQexecParams(c, "INSERT INTO rows_t VALUES ($1)", 1, NULL, params,
			 NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s",
		     PQerrorMessage(c));
	PQclear(r);
	/* Stored as LATIN1: each 'é' is one byte there. */
	expect_value(c,
		     "SELECT length(game_id) || '/' || octet_length(game_id) "
		     "FROM rows_t",
		     "5/5");
	r = PQexecParams(c, "SELECT count(*) FROM rows_t WHERE game_id = $1", 1,
			 NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	cr_expect_str_eq(PQgetvalue(r, 0, 0), "1", "the UTF-8 id finds it");
	PQclear(r);
	apphost_pg_pool_release(p, c, "t", false);
	apphost_pg_pool_free(p);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s", db);
	pg_ok(admin, sql);
	PQfinish(admin);
}

/* libpq's multi-host form goes through the pool: the first host is down,
 * the second (the primary) serves the lease. */
Test(postgres, multi_host_dsn_skips_a_dead_host)
{
	const char *port = need_env("APPHOST_PG_PORT");
	struct apphost_pg_pool *p;
	PGconn *c;
	char dsn[256], err[256];

	snprintf(dsn, sizeof(dsn),
		 "host=127.0.0.1,127.0.0.1 port=1,%s user=postgres "
		 "dbname=postgres target_session_attrs=read-write",
		 port);
	cr_assert_eq(apphost_pg_pool_new(dsn, 1, &p, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(apphost_pg_pool_lease(p, 5000, "t", &c), 0);
	cr_assert_str_eq(PQport(c), port);
	apphost_pg_pool_release(p, c, "t", false);
	apphost_pg_pool_free(p);
}

Test(postgres, unreachable_port_fails)
{
	struct apphost_pg_pool *p;
	PGconn *c;
	char err[256];
	char *log;

	cr_assert_eq(apphost_pg_pool_new("host=127.0.0.1 port=1 "
					 "password=hunter2 connect_timeout=2",
					 2, &p, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_pg_pool_lease(p, 2000, "t", &c), APPHOST_ECONN);
	cr_assert_null(c);
	log = log_captured();
	cr_assert(strstr(log, "postgres unreachable") != NULL, "%s", log);
	cr_assert(strstr(log, "addr=connect_timeout=2 host=127.0.0.1 port=1 "
			      "err=\"connection refused\"") != NULL,
		  "%s", log);
	cr_assert(strstr(log, "hunter2") == NULL, "password logged: %s", log);
	free(log);
	apphost_pg_pool_free(p);
}

Test(postgres, bad_dsn_refused_without_secret)
{
	struct apphost_pg_pool *p;
	char err[256] = "";

	cr_assert_eq(apphost_pg_pool_new("host=x password=hunter2 junk", 2, &p,
					 err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "hunter2") == NULL, "%s", err);
	cr_assert(strstr(err, "not a valid libpq conninfo") != NULL, "%s", err);
}

/* libpq takes "s3cr" as the password and "t@host" as the host, and its
 * connect error quotes the host: refused before any connect. */
Test(postgres, unescaped_at_in_uri_password_never_logged)
{
	struct apphost_pg_pool *p = NULL;
	PGconn *c;
	char err[256] = "";
	char *log;
	int rc = apphost_pg_pool_new("postgresql://app:s3cr@t@host/db", 2, &p,
				     err, sizeof(err));

	if (rc == 0) { /* whatever the check, a failed lease must not leak */
		cr_expect_eq(apphost_pg_pool_lease(p, 2000, "t", &c),
			     APPHOST_ECONN);
		apphost_pg_pool_free(p);
	}
	log = log_captured();
	cr_assert_eq(rc, APPHOST_EINVAL, "accepted; log: %s", log);
	cr_assert(strstr(err, "%40") != NULL, "%s", err);
	cr_assert(strstr(log, "s3cr") == NULL && strstr(log, "t@host") == NULL,
		  "password logged: %s", log);
	cr_assert(strstr(err, "s3cr") == NULL && strstr(err, "t@") == NULL,
		  "%s", err);
	free(log);
}

Test(redis, auth_refused_without_leaking_password)
{
	const char *url = need_env("APPHOST_REDIS_URL");
	struct apphost_redis_pool *p;
	redisContext *c;
	char with_pw[512], err[256];
	char *log;

	cr_assert(strncmp(url, "redis://", 8) == 0);
	if (strchr(url, '@') != NULL)
		cr_skip_test("server URL already carries credentials");
	snprintf(with_pw, sizeof(with_pw), "redis://:hunter2@%s", url + 8);
	cr_assert_eq(apphost_redis_pool_new(with_pw, 2, &p, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_redis_pool_lease(p, 2000, "t", &c), APPHOST_EAUTH);
	log = log_captured();
	cr_assert(strstr(log, "AUTH refused") != NULL, "%s", log);
	cr_assert(strstr(log, "hunter2") == NULL, "password logged: %s", log);
	free(log);
	apphost_redis_pool_free(p);
}
