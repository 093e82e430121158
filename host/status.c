/* status.c -- see status.h. */
#include "status.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

struct status {
	char name[64];
	bool up;
	bool reported; /* set_ready called at least once */
	bool ready;
	bool note; /* ready, and reason holds a note for /readyz */
	char reason[201];
	struct apphost_metric *up_gauge;
	struct apphost_metric *ready_gauge;
	struct status *next;
};

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static struct status *statuses;
static atomic_bool stopping;

/* The host's own conditions (apphost_status_set_host), under status_mu. */
#define HOST_CONDITIONS 8
static struct {
	const char *what; /* NULL: unused */
	bool ok;
	char reason[201];
} host_conditions[HOST_CONDITIONS];

/* /readyz shows one line per reason: control characters become spaces. */
static void scrub(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* Under status_mu: the entry for name, created on first use (or NULL). */
static struct status *status_find(const char *name)
{
	struct status *s, **tail = &statuses;
	const char *labels[] = {"component", name, NULL};

	for (s = statuses; s != NULL; s = s->next) {
		if (strcmp(s->name, name) == 0)
			return s;
		tail = &s->next;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	(void)apphost_metrics_get(apphost_metrics_default(),
				  APPHOST_METRIC_GAUGE, "apphost_component_up",
				  "1 while the component is started, else 0.",
				  labels, NULL, 0, &s->up_gauge);
	(void)apphost_metrics_get(
	    apphost_metrics_default(), APPHOST_METRIC_GAUGE,
	    "apphost_component_ready",
	    "1 while the component is started and reports ready, as /readyz "
	    "counts it; else 0.",
	    labels, NULL, 0, &s->ready_gauge);
	*tail = s;
	return s;
}

void apphost_status_register(const char *name)
{
	pthread_mutex_lock(&status_mu);
	(void)status_find(name != NULL ? name : "?");
	pthread_mutex_unlock(&status_mu);
}

/* Under status_mu: apphost_component_ready as /readyz judges s. */
static void export_ready(struct status *s)
{
	apphost_metric_set(s->ready_gauge,
			   s->up && (!s->reported || s->ready) ? 1 : 0);
}

void apphost_status_set_up(const char *name, bool up)
{
	struct status *s;

	pthread_mutex_lock(&status_mu);
	s = status_find(name != NULL ? name : "?");
	if (s != NULL) {
		s->up = up;
		apphost_metric_set(s->up_gauge, up ? 1 : 0);
		export_ready(s);
	}
	pthread_mutex_unlock(&status_mu);
}

/* Length of a reason's generic head: up to its first ':', trimmed. */
static size_t reason_head(const char *r)
{
	size_t n = strcspn(r, ":");

	while (n > 0 && r[n - 1] == ' ')
		n--;
	return n;
}

void apphost_status_set_ready(const char *name, bool ready, const char *reason)
{
	char full[sizeof(((struct status *)0)->reason)];
	bool changed = false;
	struct status *s;

	snprintf(full, sizeof(full), "%s",
		 reason != NULL && reason[0] != '\0' ? reason : "not ready");
	scrub(full);
	pthread_mutex_lock(&status_mu);
	s = status_find(name != NULL ? name : "?");
	if (s != NULL) {
		changed = !s->reported || s->ready != ready ||
			  (!ready && strcmp(s->reason, full) != 0);
		s->reported = true;
		s->ready = ready;
		s->note = ready && reason != NULL && reason[0] != '\0';
		snprintf(s->reason, sizeof(s->reason), "%s", full);
		export_ready(s);
	}
	pthread_mutex_unlock(&status_mu);
	/*
	 * Anyone who can reach /readyz reads it: it shows only the reason's
	 * generic head, the part before the first ':' ("postgres failing"),
	 * which holds no server text; the whole reason goes to the log.
	 */
	if (changed && !ready)
		apphost_log(APPHOST_LOG_INFO, name, "not ready",
			    "reason=\"%s\"", full);
	else if (changed)
		apphost_log(APPHOST_LOG_INFO, name, "ready", NULL);
}

void apphost_status_set_host(const char *what, bool ok, const char *reason)
{
	pthread_mutex_lock(&status_mu);
	for (size_t i = 0; what != NULL && i < HOST_CONDITIONS; i++) {
		if (host_conditions[i].what != NULL &&
		    strcmp(host_conditions[i].what, what) != 0)
			continue;
		host_conditions[i].what = what;
		host_conditions[i].ok = ok;
		snprintf(host_conditions[i].reason,
			 sizeof(host_conditions[i].reason), "%s",
			 reason != NULL && reason[0] != '\0' ? reason
							     : "not ready");
		scrub(host_conditions[i].reason);
		break;
	}
	pthread_mutex_unlock(&status_mu);
}

void apphost_status_set_stopping(void)
{
	atomic_store(&stopping, true);
}

APPHOST_PRINTF(3, 4)
static void put_line(char *buf, size_t cap, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, cap - used, fmt, ap);
	va_end(ap);
}

bool apphost_status_ready(char *buf, size_t cap)
{
	bool ok = true;

	if (cap == 0)
		return false;
	buf[0] = '\0';
	if (atomic_load(&stopping)) {
		put_line(buf, cap, "stopping\n");
		ok = false;
	}
	pthread_mutex_lock(&status_mu);
	for (size_t i = 0; i < HOST_CONDITIONS; i++)
		if (host_conditions[i].what != NULL && !host_conditions[i].ok) {
			put_line(buf, cap, "%s: %s\n", host_conditions[i].what,
				 host_conditions[i].reason);
			ok = false;
		}
	if (statuses == NULL) {
		put_line(buf, cap, "no component started yet\n");
		ok = false;
	}
	for (const struct status *s = statuses; s != NULL; s = s->next) {
		if (!s->up) {
			put_line(buf, cap, "%s: not started\n", s->name);
			ok = false;
		} else if (s->reported && !s->ready) {
			size_t n = reason_head(s->reason);

			put_line(buf, cap, "%s: %.*s\n", s->name,
				 n > 0 ? (int)n : 9,
				 n > 0 ? s->reason : "not ready");
			ok = false;
		} else if (s->reported && s->note && reason_head(s->reason)) {
			/* ready, with what the component says it is doing */
			put_line(buf, cap, "%s: %.*s\n", s->name,
				 (int)reason_head(s->reason), s->reason);
		}
	}
	pthread_mutex_unlock(&status_mu);
	if (ok)
		put_line(buf, cap, "ready\n");
	return ok;
}
