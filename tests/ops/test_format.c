/*
 * Suite ops, no servers: the Prometheus text exposition of a private
 * registry, and JSON log lines.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <uv.h>

#include "build_info.h"
#include "index_params.h"
#include "log.h"
#include "metrics.h"
#include "process_metrics.h"

static struct apphost_metrics *reg;

static void setup(void)
{
	cr_assert_eq(apphost_metrics_new(&reg), 0);
}

static void teardown(void)
{
	apphost_metrics_free(reg);
}

TestSuite(exposition, .init = setup, .fini = teardown);

static char *render(void)
{
	char *text;
	size_t len;
	cr_assert_eq(apphost_metrics_render(reg, &text, &len), 0);
	cr_assert_eq(strlen(text), len);
	return text;
}

Test(exposition, counter_gauge_histogram_and_escaping)
{
	struct apphost_metric *a, *b, *g, *h;
	const char *la[] = {"kind", "say \"hi\"\\n\nx", "pool", "p", NULL};
	const char *lb[] = {"kind", "plain", "pool", "p", NULL};
	const double buckets[] = {0.1, 1, 2.5};

	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "x_total",
					 "Help with \\ and\nnewline.", la, NULL,
					 0, &a),
		     0);
	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "x_total",
					 "Help with \\ and\nnewline.", lb, NULL,
					 0, &b),
		     0);
	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_GAUGE, "g",
					 "A gauge.", NULL, NULL, 0, &g),
		     0);
	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_HISTOGRAM,
					 "h_seconds", "Times.", NULL, buckets,
					 3, &h),
		     0);
	apphost_metric_add(a, 2);
	apphost_metric_add(a, -5); /* ignored: counters only go up */
	apphost_metric_add(b, 0.5);
	apphost_metric_set(g, -3);
	apphost_metric_add(g, 1);
	apphost_metric_observe(h, 0.05);
	apphost_metric_observe(h, 1);
	apphost_metric_observe(h, 2);
	apphost_metric_observe(h, 100);

	char *text = render();
	cr_expect_str_eq(
	    text, "# HELP x_total Help with \\\\ and\\nnewline.\n"
		  "# TYPE x_total counter\n"
		  "x_total{kind=\"say \\\"hi\\\"\\\\n\\nx\",pool=\"p\"} 2\n"
		  "x_total{kind=\"plain\",pool=\"p\"} 0.5\n"
		  "# HELP g A gauge.\n"
		  "# TYPE g gauge\n"
		  "g -2\n"
		  "# HELP h_seconds Times.\n"
		  "# TYPE h_seconds histogram\n"
		  "h_seconds_bucket{le=\"0.1\"} 1\n"
		  "h_seconds_bucket{le=\"1\"} 2\n"
		  "h_seconds_bucket{le=\"2.5\"} 3\n"
		  "h_seconds_bucket{le=\"+Inf\"} 4\n"
		  "h_seconds_sum 103.05\n"
		  "h_seconds_count 4\n");
	free(text);
}

Test(exposition, same_series_again_and_refusals)
{
	struct apphost_metric *a, *b;
	const char *l1[] = {"k", "v", NULL};
	const char *le[] = {"le", "1", NULL};
	const char *bad[] = {"0k", "v", NULL};
	const double down[] = {1, 0.5};

	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "c_total",
					 "C.", l1, NULL, 0, &a),
		     0);
	cr_assert_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "c_total",
					 "C.", l1, NULL, 0, &b),
		     0);
	cr_expect_eq(a, b, "the same labels give the same series");
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_GAUGE, "c_total",
					 "C.", l1, NULL, 0, &b),
		     APPHOST_EINVAL, "another type under the same name");
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "c_total",
					 "C.", NULL, NULL, 0, &b),
		     APPHOST_EINVAL, "other label names under the same name");
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "1bad",
					 "", NULL, NULL, 0, &b),
		     APPHOST_EINVAL);
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_COUNTER, "x", "",
					 bad, NULL, 0, &b),
		     APPHOST_EINVAL);
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_HISTOGRAM, "h", "",
					 le, down, 1, &b),
		     APPHOST_EINVAL, "le is reserved in histograms");
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_HISTOGRAM, "h", "",
					 NULL, down, 2, &b),
		     APPHOST_EINVAL, "buckets must increase");
	cr_expect_eq(apphost_metrics_get(reg, APPHOST_METRIC_HISTOGRAM, "h", "",
					 NULL, NULL, 0, &b),
		     APPHOST_EINVAL);
	apphost_metric_add(NULL, 1); /* NULL handles are no-ops */
	apphost_metric_observe(NULL, 1);
}

/* ---- JSON log lines ------------------------------------------------------ */

struct json_case {
	int level;
	const char *component, *msg, *fields, *want;
};

/* By index: Criterion runs each case in a fresh process, where pointers
 * in a copied parameter would not point into this one's memory. */
static const struct json_case json_cases[] = {
    {APPHOST_LOG_INFO, NULL, "starting", NULL,
     "{\"ts\":\"T\",\"level\":\"info\",\"component\":\"apphost\","
     "\"msg\":\"starting\",\"fields\":{}}\n"},
    {APPHOST_LOG_WARN, "health_events", "dependency failing",
     "dependency=redis code=ECONN error=\"lease: connection "
     "failed\" offset=1-0",
     "{\"ts\":\"T\",\"level\":\"warn\",\"component\":"
     "\"health_events\",\"msg\":\"dependency failing\",\"fields\":"
     "{\"dependency\":\"redis\",\"code\":\"ECONN\",\"error\":"
     "\"lease: connection failed\",\"offset\":\"1-0\"}}\n"},
    /* quotes, backslashes and control characters are escaped */
    {APPHOST_LOG_ERROR, "c", "a \"quoted\"\nmsg",
     "err=\"say \\\"x\\\" or \"y\"\" path=C:\\tmp tab=\"a\tb\"",
     "{\"ts\":\"T\",\"level\":\"error\",\"component\":\"c\","
     "\"msg\":\"a \\\"quoted\\\"\\nmsg\",\"fields\":{\"err\":"
     "\"say \\\"x\\\" or \\\"y\\\"\",\"path\":\"C:\\\\tmp\","
     "\"tab\":\"a\\tb\"}}\n"},
    /* words that are not key=value are kept under "_" */
    {APPHOST_LOG_DEBUG, "c", "m", "loose words k=v =x",
     "{\"ts\":\"T\",\"level\":\"debug\",\"component\":\"c\","
     "\"msg\":\"m\",\"fields\":{\"k\":\"v\",\"_\":\"loose words "
     "=x\"}}\n"},
    {APPHOST_LOG_INFO, "c", "m", "empty= unterminated=\"abc",
     "{\"ts\":\"T\",\"level\":\"info\",\"component\":\"c\","
     "\"msg\":\"m\",\"fields\":{\"empty\":\"\",\"unterminated\":"
     "\"abc\"}}\n"},
};

ParameterizedTestParameters(json_log, lines)
{
	INDEX_PARAMS(json_cases);
}

ParameterizedTest(size_t *ip, json_log, lines)
{
	const struct json_case *c = &json_cases[*ip];
	char *line = apphost_log_format_json("T", c->level, c->component,
					     c->msg, c->fields);
	cr_assert_not_null(line);
	cr_expect_str_eq(line, c->want);
	free(line);
}

Test(json_log, format_names)
{
	cr_expect_eq(apphost_log_format_parse("json"), APPHOST_LOG_JSON);
	cr_expect_eq(apphost_log_format_parse("TEXT"), APPHOST_LOG_TEXT);
	cr_expect_eq(apphost_log_format_parse("yaml"), APPHOST_EINVAL);
}

/* value of `series ` in text, -1 when absent */
static double sample(const char *text, const char *series)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s ", series);
	const char *p = strstr(text, want);
	return p ? strtod(p + strlen(want), NULL) : -1;
}

Test(exposition, process_metrics_are_read_from_proc_at_scrape_time)
{
	cr_assert_eq(apphost_process_metrics_collect(reg), 0);
	char *t = render();
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	cr_expect(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
	cr_expect_geq(sample(t, "process_cpu_seconds_total"), 0);
	cr_expect_gt(sample(t, "process_resident_memory_bytes"), 1 << 20);
	cr_expect_gt(sample(t, "process_virtual_memory_bytes"),
		     sample(t, "process_resident_memory_bytes"));
	cr_expect_eq(sample(t, "process_max_fds"), (double)rl.rlim_cur);
	double start = sample(t, "process_start_time_seconds");
	double now = (double)time(NULL);
	cr_expect(start > now - 3600 && start <= now + 1, "start %f now %f",
		  start, now);
	double fds = sample(t, "process_open_fds");
	cr_expect_geq(fds, 3);
	free(t);

	/* one more descriptor open: counted at the next scrape */
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(apphost_process_metrics_collect(reg), 0);
	t = render();
	cr_expect_eq(sample(t, "process_open_fds"), fds + 1, "%s", t);
	free(t);
	close(fd);
}

Test(exposition, the_host_build_info_names_its_libraries)
{
	char want[256];
	cr_assert_eq(apphost_build_info_host(reg, "9.8.7"), 0);
	char *t = render();
	cr_expect(strstr(t, "# TYPE apphost_build_info gauge\n"), "%s", t);
	snprintf(want, sizeof(want),
		 "\napphost_build_info{version=\"9.8.7\",abi=\"%d.%d\","
		 "hiredis=\"%d.%d.%d\",libpq=\"%d.%d\",libuv=\"%s\","
		 "libmicrohttpd=\"%s\"} 1\n",
		 APPHOST_ABI_MAJOR, APPHOST_ABI_MINOR, HIREDIS_MAJOR,
		 HIREDIS_MINOR, HIREDIS_PATCH, PQlibVersion() / 10000,
		 PQlibVersion() % 10000, uv_version_string(),
		 MHD_get_version());
	cr_expect(strstr(t, want), "want %s in %s", want, t);
	free(t);
}
