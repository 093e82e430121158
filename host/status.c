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

#define CODE_MAX sizeof(((struct apphost_status_line *)0)->code)

/* A component's entry. Every field but the gauges: status_mu. */
struct status {
	char name[64];
	bool up;
	bool reported; /* set_ready called at least once */
	bool ready;
	char code[CODE_MAX];   /* shown; "" when ready without a note */
	char detail[CODE_MAX]; /* the whole report, for the log */
	struct apphost_metric *up_gauge;    /* immutable */
	struct apphost_metric *ready_gauge; /* immutable */
	struct status *next;
};

/* A host condition. what: immutable; the rest: status_mu. */
struct apphost_status_cond {
	const char *what;
	bool ok;
	char code[CODE_MAX];
	struct apphost_status_cond *next;
};

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static struct status *statuses;		  /* status_mu */
static struct apphost_status_cond *conds; /* status_mu */
static atomic_bool stopping;

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

/*
 * Length of a report's generic head: up to its first ':' or control
 * character (the end of its first line), trimmed. Before scrub(): what
 * follows a newline is the server's even without a ':'.
 */
static size_t reason_head(const char *r)
{
	size_t n = 0;

	while (r[n] != '\0' && r[n] != ':' && (unsigned char)r[n] >= 0x20 &&
	       r[n] != 0x7f)
		n++;

	while (n > 0 && r[n - 1] == ' ')
		n--;
	return n;
}

void apphost_status_set_ready(const char *name, bool ready, const char *reason)
{
	bool given = reason != NULL && reason[0] != '\0', changed = false;
	char detail[CODE_MAX], code[CODE_MAX];
	struct status *s;
	size_t n;

	snprintf(detail, sizeof(detail), "%s", given ? reason : "not ready");
	/*
	 * Anyone who can reach /readyz reads the code: the head before the
	 * first ':' or line end ("postgres failing"), which holds no server
	 * text; the detail goes to the log only.
	 */
	n = reason_head(detail);
	scrub(detail);
	if (!ready)
		snprintf(code, sizeof(code), "%.*s", n > 0 ? (int)n : 9,
			 n > 0 ? detail : "not ready");
	else
		snprintf(code, sizeof(code), "%.*s", given ? (int)n : 0,
			 detail);
	pthread_mutex_lock(&status_mu);
	s = status_find(name != NULL ? name : "?");
	if (s != NULL) {
		changed = !s->reported || s->ready != ready ||
			  (!ready && strcmp(s->detail, detail) != 0);
		s->reported = true;
		s->ready = ready;
		memcpy(s->code, code, sizeof(code));
		memcpy(s->detail, detail, sizeof(detail));
		export_ready(s);
	}
	pthread_mutex_unlock(&status_mu);
	if (changed && !ready)
		apphost_log(APPHOST_LOG_INFO, name, "not ready",
			    "reason=\"%s\"", detail);
	else if (changed)
		apphost_log(APPHOST_LOG_INFO, name, "ready", NULL);
}

struct apphost_status_cond *apphost_status_cond_add(const char *what)
{
	struct apphost_status_cond *c = calloc(1, sizeof(*c)), **tail;

	if (c == NULL)
		return NULL;
	c->what = what;
	c->ok = true;
	pthread_mutex_lock(&status_mu);
	for (tail = &conds; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = c;
	pthread_mutex_unlock(&status_mu);
	return c;
}

void apphost_status_cond_set(struct apphost_status_cond *c, bool ok,
			     const char *code)
{
	char shown[CODE_MAX];

	if (c == NULL)
		return;
	snprintf(shown, sizeof(shown), "%s",
		 code != NULL && code[0] != '\0' ? code : "not ready");
	scrub(shown);
	pthread_mutex_lock(&status_mu);
	c->ok = ok;
	memcpy(c->code, shown, sizeof(shown));
	pthread_mutex_unlock(&status_mu);
}

void apphost_status_cond_remove(struct apphost_status_cond *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&status_mu);
	for (struct apphost_status_cond **p = &conds; *p != NULL;
	     p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	pthread_mutex_unlock(&status_mu);
	free(c);
}

void apphost_status_set_stopping(void)
{
	atomic_store(&stopping, true);
}

/* Append a line to st (dropped when full). */
static void add_line(struct apphost_status *st, const char *who,
		     const char *code)
{
	if (st->n >= APPHOST_STATUS_LINES)
		return;
	snprintf(st->line[st->n].who, sizeof(st->line[st->n].who), "%s", who);
	snprintf(st->line[st->n].code, sizeof(st->line[st->n].code), "%s",
		 code);
	st->n++;
}

void apphost_status_get(struct apphost_status *st)
{
	st->ok = true;
	st->n = 0;
	if (atomic_load(&stopping)) {
		add_line(st, "", "stopping");
		st->ok = false;
	}
	pthread_mutex_lock(&status_mu);
	for (const struct apphost_status_cond *c = conds; c != NULL;
	     c = c->next)
		if (!c->ok) {
			add_line(st, c->what, c->code);
			st->ok = false;
		}
	if (statuses == NULL) {
		add_line(st, "", "no component started yet");
		st->ok = false;
	}
	for (const struct status *s = statuses; s != NULL; s = s->next) {
		if (!s->up) {
			add_line(st, s->name, "not started");
			st->ok = false;
		} else if (s->reported && !s->ready) {
			add_line(st, s->name, s->code);
			st->ok = false;
		} else if (s->reported && s->code[0] != '\0') {
			/* ready, with what the component says it is doing */
			add_line(st, s->name, s->code);
		}
	}
	pthread_mutex_unlock(&status_mu);
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

void apphost_status_text(const struct apphost_status *st, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < st->n; i++)
		put_line(buf, cap, "%s%s%s\n", st->line[i].who,
			 st->line[i].who[0] != '\0' ? ": " : "",
			 st->line[i].code);
	if (st->ok)
		put_line(buf, cap, "ready\n");
}

bool apphost_status_ready(char *buf, size_t cap)
{
	struct apphost_status st;

	apphost_status_get(&st);
	apphost_status_text(&st, buf, cap);
	return cap > 0 && st.ok;
}
