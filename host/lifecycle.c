/* lifecycle.c -- see lifecycle.h. */
#include "lifecycle.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build_info.h"
#include "comp_int.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

int apphost_comp_init(struct apphost_comp *c, const struct apphost_ctx *ctx,
		      char *err, size_t errlen)
{
	void *state = NULL;
	int rc;

	if (c->state != APPHOST_COMP_LOADED) {
		snprintf(err, errlen, "%s: init in state %s", c->name,
			 apphost_comp_state_name(c->state));
		return APPHOST_ESTATE;
	}
	c->svc_host.ctx = ctx;
	snprintf(c->svc_host.name, sizeof(c->svc_host.name), "%s", c->name);
	c->svc_host.abi_minor = c->magic != NULL ? c->magic->abi_minor : 0;
	apphost_status_register(c->name); /* /readyz waits for it from now */
	apphost_services_fill(&c->svc, &c->svc_host);
	rc = c->init(&c->svc, &state);
	if (rc != 0) {
		if (rc > 0)
			rc = APPHOST_EINVAL;
		snprintf(err, errlen, "%s: init failed: %s", c->name,
			 apphost_strerror(rc));
		return rc;
	}
	c->cstate = state;
	c->state = APPHOST_COMP_READY;
	return 0;
}

int apphost_comp_start(struct apphost_comp *c, char *err, size_t errlen)
{
	int rc;

	if (c->state != APPHOST_COMP_READY) {
		snprintf(err, errlen, "%s: start in state %s", c->name,
			 apphost_comp_state_name(c->state));
		return APPHOST_ESTATE;
	}
	rc = c->start(c->cstate);
	if (rc != 0) {
		if (rc > 0)
			rc = APPHOST_EINVAL;
		snprintf(err, errlen, "%s: start failed: %s", c->name,
			 apphost_strerror(rc));
		return rc;
	}
	c->state = APPHOST_COMP_RUNNING;
	(void)apphost_build_info_component(apphost_metrics_default(), c->magic,
					   true);
	return 0;
}

enum apphost_comp_state apphost_comp_state(const struct apphost_comp *c)
{
	return c->state;
}

bool apphost_comp_live(const struct apphost_comp *c)
{
	return c->state == APPHOST_COMP_READY ||
	       c->state == APPHOST_COMP_RUNNING ||
	       c->state == APPHOST_COMP_STUCK;
}

int apphost_comp_export(struct apphost_comp *c, void **buf, size_t *len)
{
	int rc;

	*buf = NULL;
	*len = 0;
	if (c->state != APPHOST_COMP_RUNNING || c->export_state == NULL)
		return 0;
	rc = c->export_state(c->cstate, buf, len);
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
		*len = 0;
		return rc > 0 ? APPHOST_EINVAL : rc;
	}
	return 0;
}

int apphost_comp_import(struct apphost_comp *c, const void *buf, size_t len)
{
	int rc;

	if (c->state != APPHOST_COMP_READY)
		return APPHOST_ESTATE;
	if (buf == NULL || c->import_state == NULL)
		return 0;
	rc = c->import_state(c->cstate, buf, len);
	return rc > 0 ? APPHOST_EINVAL : rc;
}

/* Shared by the waiter and the helper thread; the last one frees it. */
struct stop_call {
	pthread_mutex_t mu;
	pthread_cond_t cv;  /* signals done */
	int refs;	    /* mu */
	bool done;	    /* mu */
	int rc;		    /* mu: stop's result, once done */
	apphost_stop_fn fn; /* immutable */
	void *state;	    /* immutable */
};

static void stop_call_unref(struct stop_call *sc)
{
	bool last;

	pthread_mutex_lock(&sc->mu);
	last = --sc->refs == 0;
	pthread_mutex_unlock(&sc->mu);
	if (last) {
		pthread_cond_destroy(&sc->cv);
		pthread_mutex_destroy(&sc->mu);
		free(sc);
	}
}

static void *stop_thread(void *arg)
{
	struct stop_call *sc = arg;
	int rc = sc->fn(sc->state);

	pthread_mutex_lock(&sc->mu);
	sc->rc = rc;
	sc->done = true;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	stop_call_unref(sc);
	return NULL;
}

int apphost_comp_stop_with_deadline(struct apphost_comp *c,
				    uint64_t deadline_ns, char *err,
				    size_t errlen)
{
	struct stop_call *sc;
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t tid;
	struct timespec ts;
	bool done;
	int rc;

	if (c->state != APPHOST_COMP_READY &&
	    c->state != APPHOST_COMP_RUNNING) {
		snprintf(err, errlen, "%s: stop in state %s", c->name,
			 apphost_comp_state_name(c->state));
		return APPHOST_ESTATE;
	}
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		goto inline_stop;
	pthread_mutex_init(&sc->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sc->cv, &ca);
	pthread_condattr_destroy(&ca);
	sc->refs = 2;
	sc->fn = c->stop;
	sc->state = c->cstate;
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &ta, stop_thread, sc);
	pthread_attr_destroy(&ta);
	if (rc != 0) {
		pthread_cond_destroy(&sc->cv);
		pthread_mutex_destroy(&sc->mu);
		free(sc);
		goto inline_stop;
	}
	ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
	ts.tv_nsec = (long)(deadline_ns % 1000000000u);
	pthread_mutex_lock(&sc->mu);
	while (!sc->done) {
		if (pthread_cond_timedwait(&sc->cv, &sc->mu, &ts) == ETIMEDOUT)
			break;
	}
	done = sc->done;
	rc = sc->rc;
	pthread_mutex_unlock(&sc->mu);
	stop_call_unref(sc);
	if (!done) {
		c->state = APPHOST_COMP_STUCK;
		snprintf(err, errlen, "%s: stop still running at the deadline",
			 c->name);
		return APPHOST_ETIMEDOUT;
	}
	goto stopped;

inline_stop:
	/* No thread to spare: stop here, without a deadline. */
	rc = c->stop(c->cstate);
stopped:
	if (c->state == APPHOST_COMP_RUNNING)
		(void)apphost_build_info_component(apphost_metrics_default(),
						   c->magic, false);
	c->cstate = NULL;
	c->state = APPHOST_COMP_STOPPED;
	if (rc != 0) {
		if (rc > 0)
			rc = APPHOST_EINVAL;
		snprintf(err, errlen, "%s: stop failed: %s", c->name,
			 apphost_strerror(rc));
		return rc;
	}
	return 0;
}

/* ---- the list ---------------------------------------------------------- */

int apphost_lifecycle_load_all(const char *csv, struct apphost_comp_list *out)
{
	return apphost_lifecycle_load_all_with(csv, NULL, NULL, out);
}

int apphost_lifecycle_load_all_with(const char *csv, apphost_comp_load_fn load,
				    void *arg, struct apphost_comp_list *out)
{
	struct apphost_comp_list l = {0};
	char *copy, *save = NULL, *tok;
	char err[1024];
	int rc = 0;

	memset(out, 0, sizeof(*out));
	copy = strdup(csv != NULL ? csv : "");
	if (copy == NULL)
		return APPHOST_ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *e = tok + strlen(tok);
		struct apphost_comp *c, **nv;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		while (e > tok && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*tok == '\0')
			continue;
		rc = load != NULL
			 ? load(tok, &c, err, sizeof(err), arg)
			 : apphost_comp_load(tok, &c, err, sizeof(err));
		if (rc < 0) {
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "component refused", "reason=\"%s\"", err);
			break;
		}
		/* Status, metrics and log lines are keyed by name: two of
		 * one name would be indistinguishable (and fight over
		 * their keys). */
		for (size_t i = 0; i < l.n; i++) {
			if (strcmp(l.v[i]->name, c->name) != 0)
				continue;
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "component refused",
				    "reason=\"%s: component name %s is already "
				    "loaded from %s; each component must have "
				    "its own name\"",
				    c->path, c->name, l.v[i]->path);
			rc = APPHOST_EINVAL;
			break;
		}
		if (rc < 0) {
			apphost_comp_free(c);
			break;
		}
		nv = realloc(l.v, (l.n + 1) * sizeof(*nv));
		if (nv == NULL) {
			apphost_comp_free(c);
			rc = APPHOST_ENOMEM;
			break;
		}
		l.v = nv;
		l.v[l.n++] = c;
		apphost_log(APPHOST_LOG_INFO, NULL, "component loaded",
			    "name=%s version=%s abi=%u.%u path=%s", c->name,
			    c->version, (unsigned)c->magic->abi_major,
			    (unsigned)c->magic->abi_minor, c->path);
	}
	free(copy);
	if (rc == 0 && l.n == 0) {
		apphost_log(APPHOST_LOG_ERROR, NULL, "no components",
			    "key=APPHOST_COMPONENTS value=\"%s\"",
			    csv != NULL ? csv : "");
		rc = APPHOST_EINVAL;
	}
	if (rc < 0) {
		apphost_lifecycle_free_all(&l);
		return rc;
	}
	*out = l;
	return 0;
}

static int stop_range(struct apphost_comp_list *l, size_t n,
		      uint32_t timeout_ms)
{
	struct apphost_comp_list part = {l->v, n};

	return apphost_lifecycle_stop_all(&part, timeout_ms);
}

int apphost_lifecycle_init_all(struct apphost_comp_list *l,
			       const struct apphost_ctx *ctx,
			       uint32_t timeout_ms)
{
	char err[512];

	for (size_t i = 0; i < l->n; i++) {
		int rc = apphost_comp_init(l->v[i], ctx, err, sizeof(err));

		if (rc < 0) {
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "component init failed",
				    "name=%s path=%s err=\"%s\"", l->v[i]->name,
				    l->v[i]->path, err);
			stop_range(l, i, timeout_ms);
			return rc;
		}
		apphost_log(APPHOST_LOG_INFO, NULL, "component initialised",
			    "name=%s", l->v[i]->name);
	}
	return 0;
}

int apphost_lifecycle_check_all(struct apphost_comp_list *l)
{
	int first = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct apphost_comp *c = l->v[i];
		char report[1024] = "";
		int rc;

		if (c->check == NULL) {
			apphost_log(APPHOST_LOG_INFO, NULL,
				    "component has no connected check",
				    "name=%s", c->name);
			continue;
		}
		rc = c->check(c->cstate, report, sizeof(report));
		report[sizeof(report) - 1] = '\0';
		if (rc > 0)
			rc = APPHOST_EINVAL;
		apphost_log(rc == 0 ? APPHOST_LOG_INFO : APPHOST_LOG_ERROR,
			    NULL,
			    rc == 0 ? "component check passed"
				    : "component check failed",
			    "name=%s code=%s report=\"%s\"", c->name,
			    apphost_err_name(rc), report);
		if (rc < 0 && first == 0)
			first = rc;
	}
	return first;
}

int apphost_lifecycle_start_all(struct apphost_comp_list *l,
				uint32_t timeout_ms)
{
	char err[512];

	for (size_t i = 0; i < l->n; i++) {
		int rc = apphost_comp_start(l->v[i], err, sizeof(err));

		if (rc < 0) {
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "component start failed",
				    "name=%s path=%s err=\"%s\"", l->v[i]->name,
				    l->v[i]->path, err);
			apphost_lifecycle_stop_all(l, timeout_ms);
			return rc;
		}
		apphost_status_set_up(l->v[i]->name, true);
		apphost_log(APPHOST_LOG_INFO, NULL, "component started",
			    "name=%s", l->v[i]->name);
	}
	return 0;
}

int apphost_lifecycle_stop_all(struct apphost_comp_list *l, uint32_t timeout_ms)
{
	uint64_t start = apphost_now_ns();
	uint64_t deadline = start + (uint64_t)timeout_ms * 1000000u;
	uint64_t grace_ms = timeout_ms / 10;
	int result = 0;
	char err[512];

	if (grace_ms < 100)
		grace_ms = 100;
	if (grace_ms > 1000)
		grace_ms = 1000;
	for (size_t i = l->n; i-- > 0;) {
		struct apphost_comp *c = l->v[i];
		uint64_t now = apphost_now_ns();
		uint64_t dl = deadline;
		int rc;

		if (c->state != APPHOST_COMP_READY &&
		    c->state != APPHOST_COMP_RUNNING)
			continue;
		if (dl < now + grace_ms * 1000000u)
			dl = now + grace_ms * 1000000u;
		rc = apphost_comp_stop_with_deadline(c, dl, err, sizeof(err));
		if (rc == APPHOST_ETIMEDOUT) {
			apphost_log(
			    APPHOST_LOG_ERROR, NULL,
			    "component stop overran its deadline; "
			    "left running",
			    "name=%s deadline_ms=%u elapsed_ms=%llu", c->name,
			    timeout_ms,
			    (unsigned long long)((apphost_now_ns() - start) /
						 1000000u));
			result = APPHOST_ETIMEDOUT;
			continue; /* still running: still up */
		}
		apphost_status_set_up(c->name, false);
		if (rc < 0) {
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "component stop failed",
				    "name=%s err=\"%s\"", c->name, err);
			if (result == 0)
				result = rc;
		} else {
			apphost_log(APPHOST_LOG_INFO, NULL, "component stopped",
				    "name=%s", c->name);
		}
	}
	return result;
}

struct apphost_comp *apphost_lifecycle_replace(struct apphost_comp_list *l,
					       size_t i,
					       struct apphost_comp *nc)
{
	struct apphost_comp *old = l->v[i];

	l->v[i] = nc;
	return old;
}

size_t apphost_lifecycle_stuck(const struct apphost_comp_list *l)
{
	size_t n = 0;

	for (size_t i = 0; l != NULL && i < l->n; i++)
		if (l->v[i]->state == APPHOST_COMP_STUCK)
			n++;
	return n;
}

void apphost_lifecycle_free_all(struct apphost_comp_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = l->n; i-- > 0;)
		apphost_comp_free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
