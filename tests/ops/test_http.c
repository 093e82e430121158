/*
 * Suite ops, no servers: the HTTP endpoint in-process on a free port,
 * probed with curl(1): probes, metrics, malformed requests, slow clients.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "status.h"

static struct apphost_metrics *reg;
static struct apphost_http *srv;
static int port;

static void setup(void)
{
	char err[256];
	cr_assert_eq(apphost_metrics_new(&reg), 0);
	cr_assert_eq(
	    apphost_http_start("127.0.0.1:0", reg, &srv, err, sizeof(err)), 0,
	    "%s", err);
	port = apphost_http_port(srv);
	cr_assert_gt(port, 0);
}

static void teardown(void)
{
	apphost_http_stop(srv);
	apphost_metrics_free(reg);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

Test(http, readyz_follows_components)
{
	ops_resp r = ops_http(port, "/readyz", NULL);
	cr_expect_eq(r.status, 503, "no component yet");
	ops_resp_free(&r);

	apphost_status_register("a");
	apphost_status_register("b");
	apphost_status_set_up("a", true);
	r = ops_http(port, "/readyz", NULL);
	cr_expect_eq(r.status, 503);
	cr_expect(strstr(r.body, "b: not started"), "%s", r.body);
	ops_resp_free(&r);

	apphost_status_set_up("b", true);
	/* anyone may ask: the generic head only, the server's text is for
	 * the log */
	FILE *logf = tmpfile();
	char logtext[1024] = "";
	cr_assert_not_null(logf);
	int prev_fd = apphost_log_set_fd(fileno(logf));
	apphost_status_set_ready("b", false,
				 "postgres failing:\nFATAL:  password "
				 "authentication failed for user \"gm\"");
	r = ops_http(port, "/readyz", NULL);
	cr_expect_eq(r.status, 503);
	cr_expect_str_eq(r.body, "b: postgres failing\n");
	ops_resp_free(&r);
	(void)apphost_log_set_fd(prev_fd);
	rewind(logf);
	logtext[fread(logtext, 1, sizeof(logtext) - 1, logf)] = '\0';
	fclose(logf);
	cr_expect(strstr(logtext, "b not ready") != NULL &&
		      strstr(logtext, "password authentication failed") != NULL,
		  "details not logged: %s", logtext);
	/* no head: generic words; the head ends at the first line too, as
	 * what follows a newline is the server's, with or without a ':' */
	static const char *const shown[][2] = {
	    {": only details", "b: not ready\n"},
	    {"redis failing\r\nWRONGPASS invalid username-password pair or "
	     "user is disabled.",
	     "b: redis failing\n"},
	    {"postgres failing\nFATAL:  role \"gm\" does not exist",
	     "b: postgres failing\n"},
	};
	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		apphost_status_set_ready("b", false, shown[i][0]);
		r = ops_http(port, "/readyz", NULL);
		cr_expect_str_eq(r.body, shown[i][1], "reported: %s",
				 shown[i][0]);
		ops_resp_free(&r);
	}

	apphost_status_set_ready("b", true, NULL);
	r = ops_http(port, "/readyz", NULL);
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(r.body, "ready\n");
	ops_resp_free(&r);

	apphost_status_set_stopping();
	r = ops_http(port, "/readyz", NULL);
	cr_expect_eq(r.status, 503);
	cr_expect(strstr(r.body, "stopping"), "%s", r.body);
	ops_resp_free(&r);
	r = ops_http(port, "/healthz", NULL);
	cr_expect_eq(r.status, 200, "alive while stopping");
	ops_resp_free(&r);
}

Test(http, metrics_in_text_format)
{
	struct apphost_metric *m;
	const char *l[] = {"k", "v", NULL};
	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "t_total",
					 "T.", l, NULL, 0, &m),
		     0);
	apphost_metric_add(m, 3);
	ops_resp r = ops_http(port, "/metrics", NULL);
	cr_expect_eq(r.status, 200);
	cr_expect(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"),
		  "%s", r.headers);
	cr_expect_eq(ops_sample(r.body, "t_total{k=\"v\"}"), 3, "%s", r.body);
	ops_resp_free(&r);

	r = ops_http(port, "/metrics", "-I");
	cr_expect_eq(r.status, 200, "HEAD");
	cr_expect_null(strstr(r.body, "t_total"), "HEAD sends no body");
	ops_resp_free(&r);
}

Test(http, malformed_requests_and_still_serving)
{
	static const struct {
		const char *path, *extra;
		int want;
	} cases[] = {
	    {"/nope", NULL, 404},
	    {"/healthz/", NULL, 404},
	    {"/metrics", "-X POST -d x=1", 405},
	    {"/healthz", "-X DELETE", 405},
	    {"/healthz", "-X PUT -d y", 405},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ops_resp r = ops_http(port, cases[i].path, cases[i].extra);
		cr_expect_eq(r.status, cases[i].want, "%s %s",
			     cases[i].extra ? cases[i].extra : "GET",
			     cases[i].path);
		if (cases[i].want == 405)
			cr_expect(strstr(r.headers, "Allow: GET, HEAD"), "%s",
				  r.headers);
		ops_resp_free(&r);
	}
	/* A 40 KB header does not fit the 16 KiB connection memory. */
	char *big = malloc(40 * 1024 + 32);
	strcpy(big, "-H 'X-Big: ");
	memset(big + strlen(big), 'a', 40 * 1024);
	strcpy(big + strlen("-H 'X-Big: ") + 40 * 1024, "'");
	ops_resp r = ops_http(port, "/healthz", big);
	cr_expect_eq(r.status, 431);
	ops_resp_free(&r);
	free(big);

	r = ops_http(port, "/healthz", NULL);
	cr_expect_eq(r.status, 200, "still serving");
	cr_expect_str_eq(r.body, "ok\n");
	ops_resp_free(&r);
}

Test(http, bad_addresses)
{
	struct apphost_http *h = NULL;
	char err[256];
	cr_expect_eq(apphost_http_start("nonsense", reg, &h, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_expect_eq(
	    apphost_http_start("127.0.0.1:99999", reg, &h, err, sizeof(err)),
	    APPHOST_EINVAL);
	char busy[64];
	snprintf(busy, sizeof(busy), "127.0.0.1:%d", port);
	cr_expect_eq(apphost_http_start(busy, reg, &h, err, sizeof(err)),
		     APPHOST_EIO, "port in use");
	cr_expect(strstr(err, "in use"), "%s", err);
	cr_expect_null(h);
}

/* ---- abuse: slow clients ---------------------------------------------- */

#define TRICKLERS 64

struct tricklers {
	int fd[TRICKLERS];
	atomic_int closed_ms[TRICKLERS]; /* since start; 0: still open */
	atomic_bool stop;
	struct timespec t0;
};

static int ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int)((t.tv_sec - t0->tv_sec) * 1000 +
		     (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Every 200 ms one more header byte on each open socket; a socket the
 * server closed (EOF or reset) is noted with its time. */
static void *trickle(void *arg)
{
	struct tricklers *t = arg;

	while (!atomic_load(&t->stop)) {
		for (int i = 0; i < TRICKLERS; i++) {
			char buf[256];
			ssize_t n;

			if (t->fd[i] < 0)
				continue;
			(void)send(t->fd[i], "a", 1,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
			n = recv(t->fd[i], buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN &&
				       errno != EWOULDBLOCK)) {
				atomic_store(&t->closed_ms[i],
					     ms_since(&t->t0) + 1);
				close(t->fd[i]);
				t->fd[i] = -1;
			}
		}
		usleep(200 * 1000);
	}
	return NULL;
}

/* A header that never ends, from 127.0.0.2 (another client address). */
static int slow_client(int to_port)
{
	struct sockaddr_in me = {.sin_family = AF_INET}, to = me;
	static const char head[] =
	    "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	me.sin_addr.s_addr = htonl(0x7f000002);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)to_port);
	cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0,
		     "bind 127.0.0.2: %s", strerror(errno));
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0,
		     "connect: %s", strerror(errno));
	(void)send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL);
	return fd;
}

Test(http, trickling_clients_neither_block_healthz_nor_stay)
{
	struct tricklers t = {0};
	pthread_t th;
	int open_early = 0, all_closed_ms = 0;

	clock_gettime(CLOCK_MONOTONIC, &t.t0);
	for (int i = 0; i < TRICKLERS; i++)
		t.fd[i] = slow_client(port);
	cr_assert_eq(pthread_create(&th, NULL, trickle, &t), 0);
	usleep(500 * 1000);

	/* another client is served at once */
	struct timespec q0;
	clock_gettime(CLOCK_MONOTONIC, &q0);
	ops_resp r = ops_http(port, "/healthz", NULL);
	int took = ms_since(&q0);
	cr_expect_eq(r.status, 200, "/healthz while %d clients trickle",
		     TRICKLERS);
	cr_expect_lt(took, 5000, "/healthz took %d ms", took);
	ops_resp_free(&r);

	/* one address gets a few connections, the rest are closed at once */
	usleep(1500 * 1000);
	for (int i = 0; i < TRICKLERS; i++)
		open_early += atomic_load(&t.closed_ms[i]) == 0;
	cr_expect_gt(open_early, 0, "no slow client was served at all");
	cr_expect_leq(open_early, 16, "%d connections from one address",
		      open_early);

	/* and those are closed by the request deadline, trickle or not */
	while (ms_since(&t.t0) < 20000) {
		int open = 0;

		for (int i = 0; i < TRICKLERS; i++)
			open += atomic_load(&t.closed_ms[i]) == 0;
		if (open == 0) {
			all_closed_ms = ms_since(&t.t0);
			break;
		}
		usleep(100 * 1000);
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	for (int i = 0; i < TRICKLERS; i++)
		if (t.fd[i] >= 0)
			close(t.fd[i]);
	cr_assert_gt(all_closed_ms, 0,
		     "trickling connections still open after 20 s");
	cr_log_info("tricklers: /healthz in %d ms, %d served, all closed "
		    "after %d ms",
		    took, open_early, all_closed_ms);

	r = ops_http(port, "/healthz", NULL);
	cr_expect_eq(r.status, 200);
	ops_resp_free(&r);
}
