/* http.c -- see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"
#include "metrics.h"

#define MEMORY_LIMIT	   (16 * 1024)
#define CONNECTION_LIMIT   64
#define CONNECTION_TIMEOUT 10 /* seconds */

struct apphost_http {
	struct MHD_Daemon *d;
	struct apphost_metrics *metrics;
	uint16_t port;
};

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

int apphost_http_start(const char *addr, struct apphost_metrics *metrics,
		       struct apphost_http **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct apphost_http *h;
	const union MHD_DaemonInfo *info;
	unsigned flags =
	    MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
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
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)CONNECTION_TIMEOUT, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_log, NULL, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		free(h);
		return APPHOST_EIO;
	}
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
	MHD_stop_daemon(h->d);
	free(h);
}
