/*
 * mock.c -- libapphost-mock: see include/apphost/mock.h.
 *
 * Metrics go to a private registry of host/metrics.c, so a component
 * meets the host's own rules. The rest (log capture, configuration,
 * leases, readiness, the lifecycle) is here, behind one mutex; real
 * connections are in mock_servers.c.
 */
#include <apphost/mock.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "magic_check.h"
#include "metrics.h"
#include "mock_impl.h"

/* ---- services: log and configuration ------------------------------------ */

static const char *level_name(int level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	return level >= 0 && level <= 3 ? names[level] : "?";
}

static void svc_log(void *host, int level, const char *msg,
		    const char *fields_fmt, ...) APPHOST_PRINTF(4, 5);

static void svc_log(void *host, int level, const char *msg,
		    const char *fields_fmt, ...)
{
	apphost_mock *m = host;
	struct line l = {level, NULL, NULL, NULL};

	if (fields_fmt != NULL) {
		va_list ap;

		va_start(ap, fields_fmt);
		if (vasprintf(&l.fields, fields_fmt, ap) < 0)
			l.fields = NULL;
		va_end(ap);
	} else {
		l.fields = strdup("");
	}
	l.msg = strdup(msg != NULL ? msg : "");
	if (l.fields == NULL || l.msg == NULL ||
	    asprintf(&l.text, "%s%s%s", l.msg, l.fields[0] ? " " : "",
		     l.fields) < 0)
		goto drop;
	pthread_mutex_lock(&m->mu);
	if (level < m->log_level)
		goto drop_locked;
	if (m->nlines == m->lines_cap) {
		size_t nc = m->lines_cap ? m->lines_cap * 2 : 64;
		struct line *nl = realloc(m->lines, nc * sizeof(*nl));

		if (nl == NULL)
			goto drop_locked;
		m->lines = nl;
		m->lines_cap = nc;
	}
	if (m->echo != NULL)
		fprintf(m->echo, "[%s] %s\n", level_name(level), l.text);
	m->lines[m->nlines++] = l;
	pthread_mutex_unlock(&m->mu);
	return;
drop_locked:
	pthread_mutex_unlock(&m->mu);
drop:
	free(l.msg);
	free(l.fields);
	free(l.text);
}

static bool svc_log_enabled(void *host, int level)
{
	apphost_mock *m = host;
	bool on;

	pthread_mutex_lock(&m->mu);
	on = level >= m->log_level;
	pthread_mutex_unlock(&m->mu);
	return on;
}

static const char *svc_config_get(void *host, const char *key)
{
	apphost_mock *m = host;
	const char *v = NULL;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; key != NULL && i < m->ncfg; i++)
		if (strcmp(m->cfg[i].key, key) == 0)
			v = m->cfg[i].value;
	pthread_mutex_unlock(&m->mu);
	return v;
}

/* ---- services: leases --------------------------------------------------- */

/* Count a lease that succeeded (rc == 0); returns rc. */
static int leased(apphost_mock *m, int rc)
{
	if (rc == 0) {
		pthread_mutex_lock(&m->mu);
		m->leases_out++;
		m->leases_total++;
		pthread_mutex_unlock(&m->mu);
	}
	return rc;
}

/* Count a release. */
static void released(apphost_mock *m, bool broken)
{
	pthread_mutex_lock(&m->mu);
	m->leases_out--;
	m->broken += broken;
	pthread_mutex_unlock(&m->mu);
}

/* A copy of one pool's switch and connector, taken under mu. */
static struct redis_side redis_side(apphost_mock *m)
{
	struct redis_side s;

	pthread_mutex_lock(&m->mu);
	s = m->redis;
	pthread_mutex_unlock(&m->mu);
	return s;
}

static struct pg_side pg_side(apphost_mock *m)
{
	struct pg_side s;

	pthread_mutex_lock(&m->mu);
	s = m->pg;
	pthread_mutex_unlock(&m->mu);
	return s;
}

static int svc_redis_lease(void *host, uint32_t timeout_ms,
			   struct redisContext **out)
{
	struct redis_side s = redis_side(host);

	*out = NULL;
	return leased(host, s.fail != 0		? s.fail
			    : s.connect != NULL ? s.connect(s.ud, out)
						: APPHOST_ECONN);
}

static void svc_redis_release(void *host, struct redisContext *c, bool broken)
{
	struct redis_side s = redis_side(host);

	if (c == NULL)
		return;
	released(host, broken);
	if (s.close != NULL)
		s.close(s.ud, c);
}

static int svc_pg_lease(void *host, uint32_t timeout_ms, struct pg_conn **out)
{
	struct pg_side s = pg_side(host);

	*out = NULL;
	return leased(host, s.fail != 0		? s.fail
			    : s.connect != NULL ? s.connect(s.ud, out)
						: APPHOST_ECONN);
}

static void svc_pg_release(void *host, struct pg_conn *c, bool broken)
{
	struct pg_side s = pg_side(host);

	if (c == NULL)
		return;
	released(host, broken);
	if (s.close != NULL)
		s.close(s.ud, c);
}

static uint64_t svc_now_ns(void *host)
{
	apphost_mock *m = host;
	struct timespec ts;
	uint64_t off;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&m->mu);
	off = m->clock_offset;
	pthread_mutex_unlock(&m->mu);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + off;
}

/* ---- services: metrics and readiness ------------------------------------ */

static int svc_metric_get(void *host, int type, const char *name,
			  const char *help, const char *const *labels,
			  const double *buckets, size_t nbuckets,
			  struct apphost_metric **out)
{
	apphost_mock *m = host;

	return apphost_metrics_get(m->metrics, type, name, help, labels,
				   buckets, nbuckets, out);
}

static void svc_metric_add(void *host, struct apphost_metric *mt, double v)
{
	apphost_metric_add(mt, v);
}

static void svc_metric_set(void *host, struct apphost_metric *mt, double v)
{
	apphost_metric_set(mt, v);
}

static void svc_metric_observe(void *host, struct apphost_metric *mt, double v)
{
	apphost_metric_observe(mt, v);
}

static void svc_set_ready(void *host, bool ready, const char *reason)
{
	apphost_mock *m = host;

	pthread_mutex_lock(&m->mu);
	m->reported = true;
	m->ready = ready;
	m->ready_reports++;
	/* not ready: the reason; ready: an optional note ("standby") */
	snprintf(m->reason, sizeof(m->reason), "%s",
		 reason != NULL && reason[0] != '\0' ? reason
		 : ready			     ? ""
						     : "not ready");
	pthread_mutex_unlock(&m->mu);
}

/* ---- the mock ------------------------------------------------------------ */

apphost_mock *apphost_mock_new(void)
{
	apphost_mock *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (apphost_metrics_new(&m->metrics) < 0) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	m->log_level = APPHOST_LOG_DEBUG;
	m->svc = (apphost_services){
	    .size = sizeof(apphost_services),
	    .host = m,
	    .log = svc_log,
	    .log_enabled = svc_log_enabled,
	    .config_get = svc_config_get,
	    .redis_lease = svc_redis_lease,
	    .redis_release = svc_redis_release,
	    .pg_lease = svc_pg_lease,
	    .pg_release = svc_pg_release,
	    .now_ns = svc_now_ns,
	    .metric_get = svc_metric_get,
	    .metric_add = svc_metric_add,
	    .metric_set = svc_metric_set,
	    .metric_observe = svc_metric_observe,
	    .set_ready = svc_set_ready,
	};
	return m;
}

void apphost_mock_free(apphost_mock *m)
{
	if (m == NULL)
		return;
	apphost_mock_log_clear(m);
	free(m->lines);
	for (size_t i = 0; i < m->ncfg; i++) {
		free(m->cfg[i].key);
		free(m->cfg[i].value);
	}
	free(m->cfg);
	for (size_t i = 0; i < m->nold; i++)
		free(m->old_values[i]);
	free(m->old_values);
	free(m->env_redis_url);
	free(m->env_pg_dsn);
	apphost_metrics_free(m->metrics);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

const apphost_services *apphost_mock_services(apphost_mock *m)
{
	return &m->svc;
}

/* ---- configuration ------------------------------------------------------- */

/* Keep a replaced value alive (config_get handed it out). Under mu. */
static int retire_locked(apphost_mock *m, char *value)
{
	char **nv = realloc(m->old_values, (m->nold + 1) * sizeof(*nv));

	if (nv == NULL)
		return APPHOST_ENOMEM;
	m->old_values = nv;
	m->old_values[m->nold++] = value;
	return 0;
}

int apphost_mock_config_set(apphost_mock *m, const char *key, const char *value)
{
	char *k = NULL, *v = NULL;
	int rc = 0;

	if (key == NULL)
		return APPHOST_EINVAL;
	if (value != NULL && (v = strdup(value)) == NULL)
		return APPHOST_ENOMEM;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->ncfg; i++) {
		if (strcmp(m->cfg[i].key, key) != 0)
			continue;
		rc = retire_locked(m, m->cfg[i].value);
		if (rc < 0) {
			free(v);
		} else if (v != NULL) {
			m->cfg[i].value = v;
		} else {
			free(m->cfg[i].key);
			m->cfg[i] = m->cfg[--m->ncfg];
		}
		pthread_mutex_unlock(&m->mu);
		return rc;
	}
	if (v == NULL)
		goto out;
	if (m->ncfg == m->cfg_cap) {
		size_t nc = m->cfg_cap ? m->cfg_cap * 2 : 16;
		struct kv *n = realloc(m->cfg, nc * sizeof(*n));

		if (n == NULL) {
			rc = APPHOST_ENOMEM;
			goto out;
		}
		m->cfg = n;
		m->cfg_cap = nc;
	}
	if ((k = strdup(key)) == NULL) {
		rc = APPHOST_ENOMEM;
		goto out;
	}
	m->cfg[m->ncfg++] = (struct kv){k, v};
	v = NULL;
out:
	pthread_mutex_unlock(&m->mu);
	free(v);
	return rc;
}

/* ---- log ------------------------------------------------------------------
 */

void apphost_mock_set_log_level(apphost_mock *m, int level)
{
	pthread_mutex_lock(&m->mu);
	m->log_level = level;
	pthread_mutex_unlock(&m->mu);
}

void apphost_mock_log_echo(apphost_mock *m, FILE *f)
{
	pthread_mutex_lock(&m->mu);
	m->echo = f;
	pthread_mutex_unlock(&m->mu);
}

size_t apphost_mock_log_lines(apphost_mock *m)
{
	size_t n;

	pthread_mutex_lock(&m->mu);
	n = m->nlines;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int apphost_mock_log_get(apphost_mock *m, size_t i, char *msg, size_t msgcap,
			 char *fields, size_t fieldscap)
{
	int level = -1;

	pthread_mutex_lock(&m->mu);
	if (i < m->nlines) {
		level = m->lines[i].level;
		if (msg != NULL && msgcap > 0)
			snprintf(msg, msgcap, "%s", m->lines[i].msg);
		if (fields != NULL && fieldscap > 0)
			snprintf(fields, fieldscap, "%s", m->lines[i].fields);
	}
	pthread_mutex_unlock(&m->mu);
	return level;
}

int apphost_mock_log_line(apphost_mock *m, size_t i, char *out, size_t cap)
{
	int level = -1;

	pthread_mutex_lock(&m->mu);
	if (i < m->nlines) {
		level = m->lines[i].level;
		if (out != NULL && cap > 0)
			snprintf(out, cap, "%s", m->lines[i].text);
	}
	pthread_mutex_unlock(&m->mu);
	return level;
}

size_t apphost_mock_log_count(apphost_mock *m, int level, const char *needle)
{
	size_t n = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++)
		if (m->lines[i].level >= level &&
		    (needle == NULL || strstr(m->lines[i].text, needle)))
			n++;
	pthread_mutex_unlock(&m->mu);
	return n;
}

size_t apphost_mock_log_match(apphost_mock *m, int level, const char *msg,
			      const char *fields)
{
	size_t n = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++) {
		const struct line *l = &m->lines[i];

		if (l->level >= level &&
		    (msg == NULL || strcmp(l->msg, msg) == 0) &&
		    (fields == NULL || strstr(l->fields, fields) != NULL))
			n++;
	}
	pthread_mutex_unlock(&m->mu);
	return n;
}

int apphost_mock_log_max_level(apphost_mock *m, const char *needle)
{
	int max = -1;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++)
		if ((needle == NULL || strstr(m->lines[i].text, needle)) &&
		    m->lines[i].level > max)
			max = m->lines[i].level;
	pthread_mutex_unlock(&m->mu);
	return max;
}

size_t apphost_mock_log_longest(apphost_mock *m)
{
	size_t max = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++) {
		size_t l = strlen(m->lines[i].text);

		if (l > max)
			max = l;
	}
	pthread_mutex_unlock(&m->mu);
	return max;
}

void apphost_mock_log_clear(apphost_mock *m)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++) {
		free(m->lines[i].msg);
		free(m->lines[i].fields);
		free(m->lines[i].text);
	}
	m->nlines = 0;
	pthread_mutex_unlock(&m->mu);
}

/* ---- leases ---------------------------------------------------------------
 */

void apphost_mock_fail_redis(apphost_mock *m, int code)
{
	pthread_mutex_lock(&m->mu);
	m->redis.fail = code;
	pthread_mutex_unlock(&m->mu);
}

void apphost_mock_fail_pg(apphost_mock *m, int code)
{
	pthread_mutex_lock(&m->mu);
	m->pg.fail = code;
	pthread_mutex_unlock(&m->mu);
}

void apphost_mock_set_redis_connector(apphost_mock *m,
				      apphost_mock_redis_connect_fn connect,
				      apphost_mock_redis_close_fn close,
				      void *ud)
{
	pthread_mutex_lock(&m->mu);
	m->redis = (struct redis_side){m->redis.fail, connect, close, ud};
	pthread_mutex_unlock(&m->mu);
}

void apphost_mock_set_pg_connector(apphost_mock *m,
				   apphost_mock_pg_connect_fn connect,
				   apphost_mock_pg_close_fn close, void *ud)
{
	pthread_mutex_lock(&m->mu);
	m->pg = (struct pg_side){m->pg.fail, connect, close, ud};
	pthread_mutex_unlock(&m->mu);
}

int apphost_mock_leases_out(apphost_mock *m)
{
	int n;

	pthread_mutex_lock(&m->mu);
	n = m->leases_out;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int apphost_mock_leases_total(apphost_mock *m)
{
	int n;

	pthread_mutex_lock(&m->mu);
	n = m->leases_total;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int apphost_mock_broken_releases(apphost_mock *m)
{
	int n;

	pthread_mutex_lock(&m->mu);
	n = m->broken;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void apphost_mock_advance(apphost_mock *m, uint64_t ns)
{
	pthread_mutex_lock(&m->mu);
	m->clock_offset += ns;
	pthread_mutex_unlock(&m->mu);
}

/* ---- metrics and readiness ------------------------------------------------
 */

char *apphost_mock_metrics_text(apphost_mock *m)
{
	char *text = NULL;
	size_t len;

	return apphost_metrics_render(m->metrics, &text, &len) < 0 ? NULL
								   : text;
}

int apphost_mock_metric(apphost_mock *m, const char *series, double *out)
{
	char *text = apphost_mock_metrics_text(m);
	size_t n = series != NULL ? strlen(series) : 0;
	int rc = APPHOST_EINVAL;

	if (text == NULL)
		return APPHOST_ENOMEM;
	for (const char *l = text; n > 0 && *l != '\0';) {
		const char *eol = strchr(l, '\n');

		if (l[0] != '#' && strncmp(l, series, n) == 0 && l[n] == ' ') {
			char *end;

			*out = strtod(l + n + 1, &end);
			rc = end != l + n + 1 ? 0 : APPHOST_EINVAL;
			break;
		}
		if (eol == NULL)
			break;
		l = eol + 1;
	}
	free(text);
	return rc;
}

bool apphost_mock_ready(apphost_mock *m, char *reason, size_t cap)
{
	bool ready;

	pthread_mutex_lock(&m->mu);
	ready = !m->reported || m->ready;
	if (reason != NULL && cap > 0)
		snprintf(reason, cap, "%s", m->reported ? m->reason : "");
	pthread_mutex_unlock(&m->mu);
	return ready;
}

int apphost_mock_ready_reports(apphost_mock *m)
{
	int n;

	pthread_mutex_lock(&m->mu);
	n = m->ready_reports;
	pthread_mutex_unlock(&m->mu);
	return n;
}

/* ---- driving a component --------------------------------------------------
 */

enum comp_state { C_LOADED, C_READY, C_RUNNING, C_STOPPED };

struct apphost_mock_component {
	apphost_mock *mock;
	apphost_mock_entry e;
	const apphost_magic *magic;
	void *dl; /* dlopen handle, or NULL when linked */
	void *state;
	enum comp_state st;
};

/* The host's checks of the magic block (magic_check.c, as the loader). */
static int check_magic(const char *what, const apphost_magic *mg, char *err,
		       size_t errlen)
{
	if (mg == NULL) {
		set_err(err, errlen, "%s: magic function returned NULL", what);
		return APPHOST_EINVAL;
	}
	if (apphost_magic_check(what, mg, err, errlen) < 0)
		return APPHOST_EINVAL;
	if (mg->name == NULL || mg->name[0] == '\0') {
		set_err(err, errlen, "%s: no component name", what);
		return APPHOST_EINVAL;
	}
	return 0;
}

static int attach(apphost_mock *m, const apphost_mock_entry *e, void *dl,
		  const char *what, apphost_mock_component **out, char *err,
		  size_t errlen)
{
	apphost_mock_component *c;
	const apphost_magic *mg;
	int rc;

	*out = NULL;
	if (e == NULL || e->magic == NULL || e->init == NULL ||
	    e->start == NULL || e->stop == NULL) {
		set_err(err, errlen, "%s: missing entry point", what);
		return APPHOST_EINVAL;
	}
	mg = e->magic();
	rc = check_magic(what, mg, err, errlen);
	if (rc < 0)
		return rc;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return APPHOST_ENOMEM;
	c->mock = m;
	c->e = *e;
	c->magic = mg;
	c->dl = dl;
	c->st = C_LOADED;
	*out = c;
	return 0;
}

int apphost_mock_attach(apphost_mock *m, const apphost_mock_entry *entry,
			apphost_mock_component **out, char *err, size_t errlen)
{
	return attach(m, entry, NULL, "linked component", out, err, errlen);
}

int apphost_mock_load(apphost_mock *m, const char *path,
		      apphost_mock_component **out, char *err, size_t errlen)
{
	static const char *const req[] = {APPHOST_SYM_MAGIC, APPHOST_SYM_INIT,
					  APPHOST_SYM_START, APPHOST_SYM_STOP};
	apphost_mock_entry e = {0};
	void *dl, *sym[4];
	int rc;

	*out = NULL;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		set_err(err, errlen, "%s", dlerror());
		return APPHOST_EINVAL;
	}
	for (size_t i = 0; i < 4; i++) {
		sym[i] = dlsym(dl, req[i]);
		if (sym[i] == NULL) {
			set_err(err, errlen, "%s: symbol %s missing", path,
				req[i]);
			dlclose(dl);
			return APPHOST_EINVAL;
		}
	}
	/* POSIX: a dlsym() result converts to a function pointer; memcpy
	 * says so without a cast ISO C forbids. */
	memcpy(&e.magic, &sym[0], sizeof(e.magic));
	memcpy(&e.init, &sym[1], sizeof(e.init));
	memcpy(&e.start, &sym[2], sizeof(e.start));
	memcpy(&e.stop, &sym[3], sizeof(e.stop));
	sym[0] = dlsym(dl, APPHOST_SYM_EXPORT);
	sym[1] = dlsym(dl, APPHOST_SYM_IMPORT);
	memcpy(&e.export_, &sym[0], sizeof(e.export_));
	memcpy(&e.import_, &sym[1], sizeof(e.import_));
	sym[0] = dlsym(dl, APPHOST_SYM_CHECK);
	memcpy(&e.check_, &sym[0], sizeof(e.check_));
	rc = attach(m, &e, dl, path, out, err, errlen);
	if (rc < 0)
		dlclose(dl);
	return rc;
}

const apphost_magic *apphost_mock_component_magic(apphost_mock_component *c)
{
	return c->magic;
}

/* A component's code: positive values are not codes; the host maps them. */
static int code(int rc)
{
	return rc > 0 ? APPHOST_EINVAL : rc;
}

int apphost_mock_init(apphost_mock_component *c)
{
	void *state = NULL;
	int rc;

	if (c->st != C_LOADED)
		return APPHOST_ESTATE;
	rc = code(c->e.init(&c->mock->svc, &state));
	if (rc == 0) {
		c->state = state;
		c->st = C_READY;
	}
	return rc;
}

int apphost_mock_start(apphost_mock_component *c)
{
	int rc;

	if (c->st != C_READY)
		return APPHOST_ESTATE;
	rc = code(c->e.start(c->state));
	/* A failed start leaves it stoppable (component.h). */
	c->st = C_RUNNING;
	return rc;
}

int apphost_mock_stop(apphost_mock_component *c)
{
	int rc;

	if (c->st != C_READY && c->st != C_RUNNING)
		return APPHOST_ESTATE;
	rc = code(c->e.stop(c->state));
	c->state = NULL;
	c->st = C_STOPPED;
	return rc;
}

int apphost_mock_export(apphost_mock_component *c, void **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (c->e.export_ == NULL)
		return APPHOST_ENOTSUP;
	if (c->st != C_RUNNING)
		return APPHOST_ESTATE;
	return code(c->e.export_(c->state, buf, len));
}

int apphost_mock_import(apphost_mock_component *c, const void *buf, size_t len)
{
	if (c->e.import_ == NULL)
		return APPHOST_ENOTSUP;
	if (c->st != C_READY)
		return APPHOST_ESTATE;
	return code(c->e.import_(c->state, buf, len));
}

int apphost_mock_check(apphost_mock_component *c, char *report, size_t cap)
{
	/* As the host: the symbol's contract is 1.3's. */
	if (c->e.check_ == NULL || c->magic->abi_minor < 3)
		return APPHOST_ENOTSUP;
	if (c->st != C_READY)
		return APPHOST_ESTATE;
	if (cap > 0)
		report[0] = '\0';
	return code(c->e.check_(c->state, report, cap));
}

void apphost_mock_component_free(apphost_mock_component *c)
{
	if (c == NULL)
		return;
	if (c->st == C_READY || c->st == C_RUNNING)
		(void)apphost_mock_stop(c);
	if (c->dl != NULL)
		dlclose(c->dl);
	free(c);
}
