/* tcp_opts.c -- see tcp_opts.h. */
#include "tcp_opts.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int apphost_tcp_opts_set(int fd)
{
	const int on = 1, idle = APPHOST_TCP_KEEPIDLE_S,
		  intvl = APPHOST_TCP_KEEPINTVL_S, cnt = APPHOST_TCP_KEEPCNT;
	const unsigned uto = APPHOST_TCP_USER_TIMEOUT_MS;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) !=
		0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) !=
		0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto)) !=
		0)
		return -errno;
	return 0;
}
