/* test_lifecycle.c -- init/start/stop order, failures, stop deadlines. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comp_int.h" /* white box: the record forgets a stopped state */
#include "helpers.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

static char order_log[600];

static void setup(void)
{
	snprintf(order_log, sizeof(order_log), "%s/order.log", tmp_dir());
	setenv("TEST_ORDER_LOG", order_log, 1);
	log_capture_start();
}

TestSuite(lifecycle, .init = setup);

static char *csv_of(const char *const *names, size_t n)
{
	static char csv[8192];
	size_t len = 0;

	csv[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(csv + len, sizeof(csv) - len, "%s%s",
					i ? " , " : "", comp_path(names[i]));
	return csv;
}

static char *orders(void)
{
	char *s = read_text(order_log);

	return s != NULL ? s : strdup("");
}

static const char *const five[] = {"order1", "order2", "order3", "order4",
				   "order5"};

Test(lifecycle, all_in_order)
{
	struct apphost_comp_list l;
	struct apphost_ctx *ctx = test_ctx_new();
	char *got, ready[512];
	size_t len;

	cr_assert_eq(apphost_lifecycle_load_all(csv_of(five, 5), &l), 0);
	cr_assert_eq(l.n, 5);
	cr_assert_eq(apphost_lifecycle_init_all(&l, ctx, 1000), 0);
	cr_assert_eq(apphost_lifecycle_start_all(&l, 1000), 0);
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(l.v[i]->state, APPHOST_COMP_RUNNING);
	/* /readyz and apphost_component_up follow the list. */
	cr_assert(apphost_status_ready(ready, sizeof(ready)), "%s", ready);
	cr_assert_eq(apphost_lifecycle_stop_all(&l, 1000), 0);
	cr_assert(!apphost_status_ready(ready, sizeof(ready)));
	cr_assert(strstr(ready, "order1: not started\n") != NULL, "%s", ready);
	cr_assert_eq(
	    apphost_metrics_render(apphost_metrics_default(), &got, &len), 0);
	cr_assert(
	    strstr(got, "apphost_component_up{component=\"order5\"} 0\n") !=
		NULL,
	    "%s", got);
	free(got);
	got = orders();
	cr_assert_str_eq(got, "init order1\ninit order2\ninit order3\n"
			      "init order4\ninit order5\n"
			      "start order1\nstart order2\nstart order3\n"
			      "start order4\nstart order5\n"
			      "stop order5\nstop order4\nstop order3\n"
			      "stop order2\nstop order1\n");
	free(got);
	apphost_lifecycle_free_all(&l);
	test_ctx_free(ctx);
}

Test(lifecycle, init_fails_in_third_of_five)
{
	struct apphost_comp_list l;
	struct apphost_ctx *ctx;
	char *got, *log;

	setenv("TEST_ORDER_FAIL_INIT", "order3", 1);
	ctx = test_ctx_new();
	cr_assert_eq(apphost_lifecycle_load_all(csv_of(five, 5), &l), 0);
	cr_assert_eq(apphost_lifecycle_init_all(&l, ctx, 1000), APPHOST_EINVAL);
	got = orders();
	cr_assert_str_eq(got, "init order1\ninit order2\ninit order3\n"
			      "stop order2\nstop order1\n");
	cr_assert_eq(apphost_comp_state(l.v[2]), APPHOST_COMP_LOADED);
	cr_assert_eq(apphost_comp_state(l.v[3]), APPHOST_COMP_LOADED);
	cr_assert_eq(apphost_comp_state(l.v[4]), APPHOST_COMP_LOADED);
	log = log_captured();
	cr_assert(strstr(log, "order3 init refused by test") != NULL, "%s",
		  log);
	cr_assert(strstr(log, "component init failed name=order3") != NULL,
		  "%s", log);
	free(log);
	free(got);
	apphost_lifecycle_free_all(&l);
	test_ctx_free(ctx);
}

Test(lifecycle, start_fails_stops_every_initialised)
{
	struct apphost_comp_list l;
	struct apphost_ctx *ctx;
	char *got;

	setenv("TEST_ORDER_FAIL_START", "order2", 1);
	ctx = test_ctx_new();
	cr_assert_eq(apphost_lifecycle_load_all(csv_of(five, 3), &l), 0);
	cr_assert_eq(apphost_lifecycle_init_all(&l, ctx, 1000), 0);
	cr_assert_eq(apphost_lifecycle_start_all(&l, 1000), APPHOST_EIO);
	got = orders();
	/* order3 was initialised but never started: still stopped. */
	cr_assert_str_eq(got, "init order1\ninit order2\ninit order3\n"
			      "start order1\nstart order2\n"
			      "stop order3\nstop order2\nstop order1\n");
	free(got);
	apphost_lifecycle_free_all(&l);
	test_ctx_free(ctx);
}

Test(lifecycle, stop_overrun_reported_rest_stopped)
{
	static const char *const names[] = {"order1", "slowstop", "order2"};
	struct apphost_comp_list l;
	struct apphost_ctx *ctx;
	uint64_t t0, ms;
	char *got, *log;

	setenv("TEST_SLOW_STOP_MS", "5000", 1);
	ctx = test_ctx_new();
	cr_assert_eq(apphost_lifecycle_load_all(csv_of(names, 3), &l), 0);
	cr_assert_eq(apphost_lifecycle_init_all(&l, ctx, 300), 0);
	cr_assert_eq(apphost_lifecycle_start_all(&l, 300), 0);
	t0 = apphost_now_ns();
	cr_assert_eq(apphost_lifecycle_stop_all(&l, 300), APPHOST_ETIMEDOUT);
	ms = (apphost_now_ns() - t0) / 1000000u;
	cr_assert_lt(ms, 3000, "stop_all took %llu ms", (unsigned long long)ms);
	cr_assert_eq(apphost_comp_state(l.v[1]), APPHOST_COMP_STUCK);
	cr_assert_eq(apphost_comp_state(l.v[0]), APPHOST_COMP_STOPPED);
	cr_assert_eq(apphost_comp_state(l.v[2]), APPHOST_COMP_STOPPED);
	cr_assert_eq(apphost_lifecycle_stuck(&l), 1);
	got = orders();
	cr_assert_str_eq(got, "init order1\ninit slowstop\ninit order2\n"
			      "start order1\nstart order2\n"
			      "stop order2\nstop order1\n");
	log = log_captured();
	cr_assert(strstr(log, "overran its deadline") != NULL, "%s", log);
	cr_assert(strstr(log, "name=slowstop deadline_ms=300") != NULL, "%s",
		  log);
	free(log);
	free(got);
	/* The stuck one is parked, never dlclose()d, its ctx kept. */
	apphost_lifecycle_free_all(&l);
}

Test(lifecycle, single_component_api)
{
	struct apphost_comp *c;
	struct apphost_ctx *ctx;
	char err[512] = "";
	char *log;

	setenv("TEST_GOOD_GREETING", "hej", 1);
	ctx = test_ctx_new();
	cr_assert_eq(apphost_comp_load(comp_path("good"), &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_comp_start(c, err, sizeof(err)), APPHOST_ESTATE);
	cr_assert_eq(apphost_comp_stop_with_deadline(c, apphost_now_ns(), err,
						     sizeof(err)),
		     APPHOST_ESTATE);
	cr_assert_eq(apphost_comp_init(c, ctx, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(apphost_comp_state(c), APPHOST_COMP_READY);
	cr_assert_eq(apphost_comp_init(c, ctx, err, sizeof(err)),
		     APPHOST_ESTATE);
	cr_assert_eq(apphost_comp_start(c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(apphost_comp_state(c), APPHOST_COMP_RUNNING);
	cr_assert_eq(apphost_comp_stop_with_deadline(
			 c, apphost_now_ns() + 2000000000u, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_comp_state(c), APPHOST_COMP_STOPPED);
	cr_assert_null(c->cstate);
	log = log_captured();
	/* Component lines carry the component's name; config_get works. */
	cr_assert(strstr(log, " info  good good init greeting=hej\n") != NULL,
		  "%s", log);
	cr_assert(strstr(log, " info  good good stopped\n") != NULL, "%s", log);
	free(log);
	apphost_comp_free(c);
	test_ctx_free(ctx);
}

/* good_build_info{version,abi} in the default registry, -1: absent. */
static double build_info(void)
{
	char *text, want[128];
	size_t len;
	double v = -1;

	cr_assert_eq(
	    apphost_metrics_render(apphost_metrics_default(), &text, &len), 0);
	snprintf(want, sizeof(want),
		 "good_build_info{version=\"1.2.3\",abi=\"%d.%d\"} ",
		 APPHOST_ABI_MAJOR, APPHOST_ABI_MINOR);
	const char *p = strstr(text, want);
	if (p != NULL)
		v = strtod(p + strlen(want), NULL);
	free(text);
	return v;
}

/* A dashboard tells which build runs: 1 while it runs, 0 once stopped. */
Test(lifecycle, a_component_build_info_is_one_while_it_runs)
{
	struct apphost_comp *c;
	struct apphost_ctx *ctx = test_ctx_new();
	char err[512] = "";

	cr_assert_eq(apphost_comp_load(comp_path("good"), &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_comp_init(c, ctx, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(build_info(), -1, "not before it starts");
	cr_assert_eq(apphost_comp_start(c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(build_info(), 1);
	cr_assert_eq(apphost_comp_stop_with_deadline(
			 c, apphost_now_ns() + 2000000000u, err, sizeof(err)),
		     0, "%s", err);
	cr_expect_eq(build_info(), 0);
	apphost_comp_free(c);
	test_ctx_free(ctx);
}

Test(lifecycle, empty_list_refused)
{
	struct apphost_comp_list l;

	cr_assert_eq(apphost_lifecycle_load_all(" , ,", &l), APPHOST_EINVAL);
	cr_assert_eq(l.n, 0);
}

Test(lifecycle, load_failure_unloads_the_rest)
{
	static const char *const names[] = {"order1", "badmajor"};
	struct apphost_comp_list l;
	char *log;

	cr_assert_eq(apphost_lifecycle_load_all(csv_of(names, 2), &l),
		     APPHOST_EINVAL);
	log = log_captured();
	cr_assert(strstr(log, "ABI major 2, host supports 1") != NULL, "%s",
		  log);
	free(log);
}

Test(log, format_and_level)
{
	char *log;

	log_capture_start();
	apphost_log_set_level(APPHOST_LOG_INFO);
	cr_assert(!apphost_log_enabled(APPHOST_LOG_DEBUG));
	cr_assert(apphost_log_enabled(APPHOST_LOG_WARN));
	apphost_log(APPHOST_LOG_DEBUG, "x", "hidden", NULL);
	apphost_log(APPHOST_LOG_WARN, "comp", "a message", "k=%d s=%s", 7,
		    "two\nlines");
	apphost_log(APPHOST_LOG_ERROR, NULL, "host line", NULL);
	apphost_log_signal_safe(APPHOST_LOG_ERROR, "from a handler");
	log = log_captured();
	cr_assert(strstr(log, "hidden") == NULL, "%s", log);
	/* 2026-11-26T20:31:02.123Z warn  comp a message k=7 s=two\nlines */
	cr_assert_eq(log[4], '-');
	cr_assert_eq(log[10], 'T');
	cr_assert_eq(log[19], '.');
	cr_assert_eq(log[23], 'Z');
	cr_assert(strncmp(log + 24, " warn  comp a message k=7 s=two\\nlines\n",
			  39) == 0,
		  "%s", log);
	cr_assert(strstr(log, "Z error apphost host line\n") != NULL, "%s",
		  log);
	cr_assert(strstr(log, "Z error apphost from a handler\n") != NULL, "%s",
		  log);
	free(log);
	cr_assert_eq(apphost_log_level_parse("WARN"), APPHOST_LOG_WARN);
	cr_assert_eq(apphost_log_level_parse("loud"), APPHOST_EINVAL);
}

/* The signal handler's line in JSON: the same shape as the others. */
Test(log, signal_safe_json)
{
	static const char rest[] =
	    "\",\"level\":\"error\",\"component\":\"apphost\",\"msg\":"
	    "\"from a handler\",\"fields\":{}}\n";
	char *log;

	log_capture_start();
	apphost_log_set_format(APPHOST_LOG_JSON);
	apphost_log_signal_safe(APPHOST_LOG_ERROR, "from a handler");
	apphost_log_set_format(APPHOST_LOG_TEXT);
	log = log_captured();
	/* {"ts":"2026-11-26T20:31:02.123Z","level":"error",... */
	cr_assert(strncmp(log, "{\"ts\":\"", 7) == 0, "%s", log);
	cr_assert_eq(log[7 + 23], 'Z', "%s", log);
	cr_assert_str_eq(log + 7 + 24, rest);
	free(log);
}
