/*
 * tcp_proxy.h -- a TCP proxy on 127.0.0.1 for partition tests: it listens
 * on a free port and forwards every connection to one target, on a thread
 * of its own, so a test (or apphost, given the proxy's port instead of the
 * server's) talks to the server through a link the test controls:
 *
 *   cut:   black-hole both directions. Bytes are read (so TCP ACKs them,
 *          as a frozen flow or a partition behind a middlebox looks) and
 *          held; nothing is delivered, nothing is closed, no RST. New
 *          connections are accepted and held the same way.
 *   freeze: cut the connections open now only; new ones flow (a flow
 *          lost by a middlebox, a hung backend: reconnecting helps).
 *   heal:  deliver everything held, late, in order, and forward again.
 *   reset: close every connection with RST (SO_LINGER 0) on both sides.
 *
 * Each control call takes effect before it returns. Any thread; the
 * functions assert (Criterion) on failures of their own.
 */
#ifndef TEST_SERVER_TCP_PROXY_H
#define TEST_SERVER_TCP_PROXY_H

#include <stddef.h>

typedef struct tp_proxy tp_proxy;

/* Listen on 127.0.0.1:<free port>, forwarding to host:port. */
tp_proxy *tp_start(const char *host, unsigned port);
/* The port it listens on. */
unsigned tp_port(const tp_proxy *p);
void tp_cut(tp_proxy *p);
void tp_freeze(tp_proxy *p);
void tp_heal(tp_proxy *p);
void tp_reset(tp_proxy *p);
/* Connections currently open through it. */
size_t tp_connections(tp_proxy *p);
/* Stop the thread, reset every connection, free p; NULL is a no-op. */
void tp_stop(tp_proxy *p);

#endif
