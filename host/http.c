/* http.c -- see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "process_metrics.h"
#include "status.h"

#define MEMORY_LIMIT	    (16 * 1024)
#define CONNECTION_LIMIT    128
#define PER_IP_LIMIT	    8	   /* probes and a scraper need one or two */
#define CONNECTION_TIMEOUT  10	   /* seconds without any byte: closed */
#define REQUEST_DEADLINE_MS 10000u /* a whole request, however it trickles */
#define WATCHDOG_PERIOD_MS  250u

/* One open connection, known from MHD's connection notifications. */
/* Every field: mu. */
struct conn {
	struct conn *prev, *next;
	int fd;
	uint64_t since_ns; /* accepted, or its last request completed */
	bool cut;	   /* shut down for overrunning the deadline */
};

struct apphost_http {
	/* immutable once apphost_http_start has returned */
	struct MHD_Daemon *d;
	struct apphost_metrics *metrics;
	uint16_t port;

	/* Request deadline. MHD's own timeout is an idle timeout: a client
	 * sending a header byte every few seconds would hold its connection
	 * (and a slot) forever. The watchdog thread shuts such a socket
	 * down; MHD then sees the end of the stream and closes it. */
	pthread_mutex_t mu;    /* held across shutdown() */
	pthread_cond_t cv;     /* signals stop */
	struct conn *conns;    /* mu */
	bool stop;	       /* mu */
	pthread_t watchdog;    /* the starting/stopping thread only */
	bool watchdog_running; /* the starting/stopping thread only */
};

/* MHD's thread: a connection was accepted or is about to be closed. MHD
 * notifies CLOSED before it closes the socket, and the watchdog only
 * touches sockets on the list under mu: it never shuts down a descriptor
 * number already reused. */
static void on_connection(void *cls, struct MHD_Connection *connection,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct apphost_http *h = cls;
	struct conn *c = *socket_context;
	const union MHD_ConnectionInfo *fi;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		fi = MHD_get_connection_info(connection,
					     MHD_CONNECTION_INFO_CONNECTION_FD);
		c = calloc(1, sizeof(*c));
		if (c == NULL || fi == NULL) {
			free(c); /* untracked: only its idle timeout applies */
			return;
		}
		c->fd = fi->connect_fd;
		c->since_ns = apphost_now_ns();
		pthread_mutex_lock(&h->mu);
		c->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->mu);
		*socket_context = c;
		return;
	}
	if (c == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&h->mu);
	free(c);
	*socket_context = NULL;
}

/* MHD's thread: a request is done; the next one on this connection gets
 * a deadline of its own. */
static void on_completed(void *cls, struct MHD_Connection *connection,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct apphost_http *h = cls;
	const union MHD_ConnectionInfo *si = MHD_get_connection_info(
	    connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = si != NULL ? si->socket_context : NULL;

	(void)con_cls;
	(void)toe;
	if (c == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	c->since_ns = apphost_now_ns();
	pthread_mutex_unlock(&h->mu);
}

static void *watchdog_main(void *arg)
{
	struct apphost_http *h = arg;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		uint64_t now = apphost_now_ns(),
			 wake = now + WATCHDOG_PERIOD_MS * 1000000ull;
		struct timespec ts = {
		    .tv_sec = (time_t)(wake / 1000000000u),
		    .tv_nsec = (long)(wake % 1000000000u),
		};
		unsigned cut = 0;

		for (struct conn *c = h->conns; c != NULL; c = c->next) {
			if (c->cut || now - c->since_ns <
					  REQUEST_DEADLINE_MS * 1000000ull)
				continue;
			(void)shutdown(c->fd, SHUT_RDWR);
			c->cut = true;
			cut++;
		}
		if (cut > 0) {
			/* Not under mu: a request's completion must not wait
			 * behind a write to stderr. */
			pthread_mutex_unlock(&h->mu);
			apphost_log(APPHOST_LOG_DEBUG, NULL,
				    "http: connections closed: request not "
				    "complete within the deadline",
				    "connections=%u deadline_ms=%u", cut,
				    REQUEST_DEADLINE_MS);
			pthread_mutex_lock(&h->mu);
			if (h->stop)
				break;
		}
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Split "host:port" / "[v6]:port" / ":port" and resolve it. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, char *err,
		      size_t errlen)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints = {0}, *res = NULL;
	size_t hl;
	int rc;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "want [v6addr]:port");
			return APPHOST_EINVAL;
		}
		hl = (size_t)(close - addr - 1);
		addr++;
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "want host:port");
			return APPHOST_EINVAL;
		}
		hl = (size_t)(colon - addr);
	}
	port = colon + 1;
	if (hl >= sizeof(host) || port[0] == '\0' ||
	    strspn(port, "0123456789") != strlen(port) || atol(port) > 65535) {
		snprintf(err, errlen, "want host:port with a port in 0..65535");
		return APPHOST_EINVAL;
	}
	memcpy(host, addr, hl);
	host[hl] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(hl > 0 ? host : "0.0.0.0", port, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host,
			 gai_strerror(rc));
		return APPHOST_EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* Queue a response and drop our reference; `mode` as MHD's. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     const char *ctype, void *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (r == NULL) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status,
			    const char *body)
{
	return reply(conn, status, "text/plain; charset=utf-8", (void *)body,
		     strlen(body), MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result serve_metrics(struct apphost_http *h,
				     struct MHD_Connection *conn)
{
	char *body;
	size_t len;

	(void)apphost_process_metrics_collect(h->metrics);
	if (apphost_metrics_render(h->metrics, &body, &len) < 0)
		return text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "out of memory\n");
	return reply(conn, MHD_HTTP_OK,
		     "text/plain; version=0.0.4; charset=utf-8", body, len,
		     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct apphost_http *h = cls;
	char reason[2048];

	(void)version;
	(void)upload_data;
	/* Answer on the first call, before any body is read. */
	*upload_data_size = 0;
	*con_cls = h;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "method not allowed: use GET or HEAD\n");
	if (strcmp(url, "/healthz") == 0)
		return text(conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		bool ready = apphost_status_ready(reason, sizeof(reason));

		return text(conn,
			    ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
			    reason);
	}
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	return text(conn, MHD_HTTP_NOT_FOUND,
		    "not found: try /healthz, /readyz or /metrics\n");
}

APPHOST_PRINTF(2, 0)
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	apphost_log(APPHOST_LOG_DEBUG, NULL, "http", "detail=\"%s\"", msg);
}

static void free_http(struct apphost_http *h)
{
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

int apphost_http_start(const char *addr, struct apphost_metrics *metrics,
		       struct apphost_http **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct apphost_http *h;
	const union MHD_DaemonInfo *info;
	unsigned flags =
	    MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	rc = parse_addr(addr != NULL ? addr : "", &ss, err, errlen);
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	h->metrics = metrics;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* One internal thread polls every connection (non-blocking): a slow
	 * client costs a slot, never the thread. */
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)CONNECTION_TIMEOUT, MHD_OPTION_NOTIFY_CONNECTION,
	    on_connection, h, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		free_http(h);
		return APPHOST_EIO;
	}
	if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
		snprintf(err, errlen, "cannot start the http watchdog thread");
		MHD_stop_daemon(h->d);
		free_http(h);
		return APPHOST_EIO;
	}
	h->watchdog_running = true;
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info != NULL ? info->port : 0;
	*out = h;
	return 0;
}

uint16_t apphost_http_port(const struct apphost_http *h)
{
	return h != NULL ? h->port : 0;
}

void apphost_http_stop(struct apphost_http *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->watchdog_running)
		pthread_join(h->watchdog, NULL);
	MHD_stop_daemon(h->d); /* notifies CLOSED for every connection */
	free_http(h);
}
