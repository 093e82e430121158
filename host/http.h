/*
 * http.h -- the operations endpoint (APPHOST_HTTP_ADDR), served by
 * libmicrohttpd on its own internal thread:
 *
 *   GET /healthz  200 "ok" while the process serves (liveness)
 *   GET /readyz   200 "ready" when every component is started and reports
 *                 ready (status.h apphost_status_ready), else 503 with
 *                 one plain-text reason per line
 *   GET /metrics  the registry in Prometheus text format 0.0.4
 *
 * HEAD works wherever GET does; any other method gets 405 (with Allow),
 * any other path 404, a request whose headers do not fit the 16 KiB
 * per-connection memory 431.
 *
 * Slow or many clients: one internal thread polls every connection
 * (non-blocking), so a slow client costs a connection slot, never the
 * thread. At most 128 connections, 8 per client address (more are closed
 * at once); 10 s without a byte closes one (MHD's idle timeout), and so
 * does a request not complete within 10 s of its connection's accept or
 * of its previous request's end, however it trickles (a watchdog thread
 * shuts the socket down).
 */
#ifndef APPHOST_HOST_HTTP_H
#define APPHOST_HOST_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

#define APPHOST_HTTP_DEFAULT_ADDR "127.0.0.1:9464"

struct apphost_http;
struct apphost_metrics;

/*
 * Listen on `addr` ("host:port", "[v6addr]:port" or ":port" for every
 * IPv4 interface; port 0 picks a free one) and serve `metrics` (must
 * outlive the server) from a libmicrohttpd thread. Returns 0 and *out,
 * or APPHOST_EINVAL (unparsable address) / APPHOST_EIO (cannot listen)
 * with the reason in err. Stop with apphost_http_stop. Main thread.
 */
int apphost_http_start(const char *addr, struct apphost_metrics *metrics,
		       struct apphost_http **out, char *err, size_t errlen);

/* The port actually listened on (useful after port 0). Any thread. */
uint16_t apphost_http_port(const struct apphost_http *h);

/*
 * Stop serving: close the listener, finish or drop the requests in hand,
 * join the thread and free h. NULL is a no-op. Main thread.
 */
void apphost_http_stop(struct apphost_http *h);

#endif
