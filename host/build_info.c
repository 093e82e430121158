/* build_info.c -- see build_info.h. */
#include "build_info.h"

#include "metrics.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <stdio.h>
#include <uv.h>

int apphost_build_info_host(struct apphost_metrics *r, const char *version)
{
	char abi[16], hiredis[32], libpq[32];
	int pq = PQlibVersion(); /* 150005: 15.5 */
	struct apphost_metric *m;

	snprintf(abi, sizeof(abi), "%d.%d", APPHOST_ABI_MAJOR,
		 APPHOST_ABI_MINOR);
	snprintf(hiredis, sizeof(hiredis), "%d.%d.%d", HIREDIS_MAJOR,
		 HIREDIS_MINOR, HIREDIS_PATCH);
	snprintf(libpq, sizeof(libpq), "%d.%d", pq / 10000, pq % 10000);
	const char *labels[] = {"version",
				version,
				"abi",
				abi,
				"hiredis",
				hiredis,
				"libpq",
				libpq,
				"libuv",
				uv_version_string(),
				"libmicrohttpd",
				MHD_get_version(),
				NULL};
	int rc = apphost_metrics_get(
	    r, APPHOST_METRIC_GAUGE, "apphost_build_info",
	    "The running host's version, component ABI and libraries (1).",
	    labels, NULL, 0, &m);
	if (rc == 0)
		apphost_metric_set(m, 1);
	return rc;
}

int apphost_build_info_component(struct apphost_metrics *r,
				 const apphost_magic *magic, bool running)
{
	char name[128], abi[16];
	size_t n = 0;
	struct apphost_metric *m;

	for (const char *p = magic->name; *p != '\0' && n < 64; p++, n++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  c == '_' || (n > 0 && c >= '0' && c <= '9');
		name[n] = ok ? c : '_';
	}
	snprintf(name + n, sizeof(name) - n, "_build_info");
	snprintf(abi, sizeof(abi), "%u.%u", (unsigned)magic->abi_major,
		 (unsigned)magic->abi_minor);
	const char *labels[] = {"version", magic->version, "abi", abi, NULL};
	int rc = apphost_metrics_get(
	    r, APPHOST_METRIC_GAUGE, name,
	    "The component build by version and ABI: 1 while it runs.", labels,
	    NULL, 0, &m);
	if (rc == 0)
		apphost_metric_set(m, running ? 1 : 0);
	return rc;
}
