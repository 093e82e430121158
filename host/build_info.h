/*
 * build_info.h -- which build every instance runs, as Prometheus
 * build-info gauges (value 1, the facts in labels):
 *
 *   apphost_build_info{version,abi,hiredis,libpq,libuv,libmicrohttpd}
 *       the host: its version, the component ABI it serves, and the
 *       libraries it runs with (libpq, libuv and libmicrohttpd as they say
 *       at run time; hiredis 0.14 has no such call: as compiled)
 *   <component>_build_info{version,abi}
 *       each component, from its magic block: 1 while that build runs,
 *       0 once stopped (after a hot swap only the running build's series
 *       is 1; a swap to the same version keeps the one series at 1)
 *
 * Any thread.
 */
#ifndef APPHOST_HOST_BUILD_INFO_H
#define APPHOST_HOST_BUILD_INFO_H

#include <stdbool.h>

#include <apphost/component.h>

struct apphost_metrics;

/* Register apphost_build_info in r, set to 1. 0 or a negative code. */
int apphost_build_info_host(struct apphost_metrics *r, const char *version);

/*
 * Set <name>_build_info{version,abi} in r to 1 (running) or 0. A name
 * that is not a metric name has each other character written as '_'.
 * 0 or a negative code (the metric refused: nothing is exported).
 */
int apphost_build_info_component(struct apphost_metrics *r,
				 const apphost_magic *magic, bool running);

#endif
