/*
 * Suite ops, no servers: the HTTP endpoint in-process on a free port,
 * probed with curl(1): probes, metrics, malformed requests.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "metrics.h"
#include "ops.h"

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
	apphost_status_set_ready("b", false, "postgres failing:\nrefused");
	r = ops_http(port, "/readyz", NULL);
	cr_expect_eq(r.status, 503);
	cr_expect_str_eq(r.body, "b: postgres failing: refused\n");
	ops_resp_free(&r);

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
