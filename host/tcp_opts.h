/*
 * tcp_opts.h -- the TCP socket options apphost puts on every connection
 * it makes itself (hiredis sockets; libpq gets the same through its own
 * conninfo keywords, see pool_pg.c): keepalives and TCP_USER_TIMEOUT, so
 * that a peer gone without a FIN or RST (a partition, a lost conntrack
 * entry, a host powered off) breaks the connection within seconds rather
 * than after tcp_retries2 (about 15 minutes), also where no call is
 * waiting with a deadline of its own.
 */
#ifndef APPHOST_HOST_TCP_OPTS_H
#define APPHOST_HOST_TCP_OPTS_H

/* Keepalive probes start after this much silence, then every interval;
 * after `count` unanswered ones the connection breaks. */
#define APPHOST_TCP_KEEPIDLE_S	5
#define APPHOST_TCP_KEEPINTVL_S 1
#define APPHOST_TCP_KEEPCNT	3
/* Data left unacknowledged this long breaks the connection. */
#define APPHOST_TCP_USER_TIMEOUT_MS 5000

/*
 * Set those options on a connected TCP socket. 0, or a negative errno
 * (a Unix socket, say, takes none of them: the caller may ignore it).
 * Any thread.
 */
int apphost_tcp_opts_set(int fd);

#endif
