/*
 * hello.c -- the smallest useful component, built by the install suite out
 * of the tree with `pkg-config --cflags apphost` alone: it includes only
 * <apphost/component.h>, counts its starts in a metric, and reports "warming
 * up" for HELLO_READY_AFTER_MS (default 0) before it is ready, so the host's
 * readiness (and systemd's STATUS=) changes once.
 *
 * Configuration: HELLO_GREETING (required), HELLO_READY_AFTER_MS,
 * HELLO_NOTE (what /readyz shows beside "hello" once ready).
 */
#define _POSIX_C_SOURCE 200809L
#include <apphost/component.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

APPHOST_COMPONENT("hello", "1.0.0");

struct hello {
	const apphost_services *svc;
	const char *greeting;
	long ready_after_ms;
	struct apphost_metric *starts;
	pthread_t thread;
	bool running;
};

/* A loaded hello.so is one instance of the component (each copy that is
 * loaded has its own), so its state is static: nothing to allocate or
 * free, which keeps the smallest component small. */
static struct hello the_hello;

static void *warm_up(void *arg)
{
	struct hello *h = arg;
	struct timespec ts = {h->ready_after_ms / 1000,
			      (h->ready_after_ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	h->svc->set_ready(h->svc->host, true,
			  h->svc->config_get(h->svc->host, "HELLO_NOTE"));
	return NULL;
}

int apphost_component_init(const apphost_services *svc, void **state)
{
	struct hello *h = &the_hello;
	const char *after;
	char *end;

	if (!APPHOST_SVC_HAS(svc, set_ready))
		return APPHOST_ENOTSUP;
	*h = (struct hello){.svc = svc};
	h->greeting = svc->config_get(svc->host, "HELLO_GREETING");
	if (h->greeting == NULL || h->greeting[0] == '\0') {
		svc->log(svc->host, APPHOST_LOG_ERROR, "bad configuration",
			 "key=HELLO_GREETING err=\"required\"");
		return APPHOST_EINVAL;
	}
	after = svc->config_get(svc->host, "HELLO_READY_AFTER_MS");
	if (after != NULL && after[0] != '\0') {
		h->ready_after_ms = strtol(after, &end, 10);
		if (*end != '\0' || h->ready_after_ms < 0) {
			svc->log(
			    svc->host, APPHOST_LOG_ERROR, "bad configuration",
			    "key=HELLO_READY_AFTER_MS value=\"%s\"", after);
			return APPHOST_EINVAL;
		}
	}
	if (svc->metric_get(svc->host, APPHOST_METRIC_COUNTER,
			    "hello_starts_total", "Times hello started.", NULL,
			    NULL, 0, &h->starts) < 0)
		return APPHOST_EINVAL;
	*state = h;
	return 0;
}

int apphost_component_start(void *state)
{
	struct hello *h = state;

	h->svc->set_ready(h->svc->host, false, "warming up");
	if (pthread_create(&h->thread, NULL, warm_up, h) != 0)
		return APPHOST_ENOMEM;
	h->running = true;
	h->svc->metric_add(h->svc->host, h->starts, 1);
	h->svc->log(h->svc->host, APPHOST_LOG_INFO, "hello started",
		    "greeting=\"%s\"", h->greeting);
	return 0;
}

int apphost_component_stop(void *state)
{
	struct hello *h = state;

	if (h->running)
		pthread_join(h->thread, NULL);
	h->svc->log(h->svc->host, APPHOST_LOG_INFO, "hello stopped", NULL);
	return 0;
}
