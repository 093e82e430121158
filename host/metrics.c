/* metrics.c -- see metrics.h. */
#include "metrics.h"

#include "strbuf.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS  8
#define MAX_BUCKETS 64

struct family;

/*
 * Owners: immutable (set before the series or family is linked in, under
 * the registry's mu; read by any thread after), atomic (updated without a
 * lock by any thread), mu (the registry's).
 */
struct apphost_metric {
	struct family *fam;    /* immutable */
	char **values;	       /* immutable: fam->nlabels label values */
	_Atomic uint64_t bits; /* atomic: counter/gauge value, histogram sum */
	/* atomic: histogram counts, fam->nb + 1 (last: +Inf) */
	_Atomic uint64_t *count;
	struct apphost_metric *next; /* mu */
};

struct family {
	/* immutable */
	int type;
	char *name, *help;
	char **labels; /* nlabels names */
	size_t nlabels;
	double *bounds; /* histogram upper bounds, nb of them */
	size_t nb;
	/* mu */
	struct apphost_metric *head, **tail;
	struct family *next;
};

struct apphost_metrics {
	pthread_mutex_t mu;
	struct family *head, **tail; /* mu */
};

/* ---- values as atomic bits ---------------------------------------------- */

static uint64_t to_bits(double v)
{
	uint64_t b;

	memcpy(&b, &v, sizeof(b));
	return b;
}

static double from_bits(uint64_t b)
{
	double v;

	memcpy(&v, &b, sizeof(v));
	return v;
}

static void bits_add(_Atomic uint64_t *a, double v)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(
	    a, &old, to_bits(from_bits(old) + v), memory_order_relaxed,
	    memory_order_relaxed))
		;
}

void apphost_metric_add(struct apphost_metric *m, double v)
{
	if (m == NULL || m->fam->type == APPHOST_METRIC_HISTOGRAM || isnan(v))
		return;
	if (m->fam->type == APPHOST_METRIC_COUNTER && !(v >= 0))
		return;
	bits_add(&m->bits, v);
}

void apphost_metric_set(struct apphost_metric *m, double v)
{
	if (m == NULL || m->fam->type != APPHOST_METRIC_GAUGE)
		return;
	atomic_store_explicit(&m->bits, to_bits(v), memory_order_relaxed);
}

void apphost_metric_sample(struct apphost_metric *m, double v)
{
	if (m == NULL || m->fam->type == APPHOST_METRIC_HISTOGRAM || isnan(v))
		return;
	atomic_store_explicit(&m->bits, to_bits(v), memory_order_relaxed);
}

void apphost_metric_observe(struct apphost_metric *m, double v)
{
	size_t i = 0;

	if (m == NULL || m->fam->type != APPHOST_METRIC_HISTOGRAM || isnan(v))
		return;
	while (i < m->fam->nb && v > m->fam->bounds[i])
		i++;
	atomic_fetch_add_explicit(&m->count[i], 1, memory_order_relaxed);
	bits_add(&m->bits, v);
}

double apphost_metric_value(const struct apphost_metric *m)
{
	uint64_t n = 0;

	if (m == NULL)
		return 0;
	if (m->fam->type != APPHOST_METRIC_HISTOGRAM)
		return from_bits(atomic_load_explicit(
		    (_Atomic uint64_t *)&m->bits, memory_order_relaxed));
	for (size_t i = 0; i <= m->fam->nb; i++)
		n += atomic_load_explicit(&m->count[i], memory_order_relaxed);
	return (double)n;
}

/* ---- registry ----------------------------------------------------------- */

int apphost_metrics_new(struct apphost_metrics **out)
{
	struct apphost_metrics *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return APPHOST_ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	r->tail = &r->head;
	*out = r;
	return 0;
}

static void free_strv(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void series_free(struct apphost_metric *m)
{
	free_strv(m->values, m->fam->nlabels);
	free(m->count);
	free(m);
}

static void family_free(struct family *f)
{
	struct apphost_metric *m, *next;

	for (m = f->head; m != NULL; m = next) {
		next = m->next;
		series_free(m);
	}
	free(f->name);
	free(f->help);
	free_strv(f->labels, f->nlabels);
	free(f->bounds);
	free(f);
}

void apphost_metrics_free(struct apphost_metrics *r)
{
	struct family *f, *next;

	if (r == NULL)
		return;
	for (f = r->head; f != NULL; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static bool name_ok(const char *s, bool colon)
{
	if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; *s != '\0'; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' ||
		      (colon && c == ':')))
			return false;
	}
	return true;
}

static size_t count_labels(const char *const *labels)
{
	size_t n = 0;

	while (labels != NULL && labels[2 * n] != NULL)
		n++;
	return n;
}

/* Check everything a registration asks for; APPHOST_EINVAL if wrong. */
static int check_request(int type, const char *name, const char *const *labels,
			 size_t nlabels, const double *buckets, size_t nb)
{
	if (type < APPHOST_METRIC_COUNTER || type > APPHOST_METRIC_HISTOGRAM ||
	    !name_ok(name, true) || nlabels > MAX_LABELS)
		return APPHOST_EINVAL;
	for (size_t i = 0; i < nlabels; i++) {
		const char *l = labels[2 * i];

		if (!name_ok(l, false) || strncmp(l, "__", 2) == 0 ||
		    labels[2 * i + 1] == NULL ||
		    (type == APPHOST_METRIC_HISTOGRAM && strcmp(l, "le") == 0))
			return APPHOST_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[2 * j], l) == 0)
				return APPHOST_EINVAL;
	}
	if (type != APPHOST_METRIC_HISTOGRAM)
		return nb == 0 ? 0 : APPHOST_EINVAL;
	if (nb == 0 || nb > MAX_BUCKETS || buckets == NULL)
		return APPHOST_EINVAL;
	for (size_t i = 0; i < nb; i++)
		if (!isfinite(buckets[i]) ||
		    (i > 0 && buckets[i] <= buckets[i - 1]))
			return APPHOST_EINVAL;
	return 0;
}

/* Under the lock: does f match the request exactly? */
static bool family_agrees(const struct family *f, int type, const char *help,
			  const char *const *labels, size_t nlabels,
			  const double *buckets, size_t nb)
{
	if (f->type != type || f->nlabels != nlabels || f->nb != nb ||
	    strcmp(f->help, help != NULL ? help : "") != 0)
		return false;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(f->labels[i], labels[2 * i]) != 0)
			return false;
	return nb == 0 ||
	       memcmp(f->bounds, buckets, nb * sizeof(*buckets)) == 0;
}

static struct family *family_new(int type, const char *name, const char *help,
				 const char *const *labels, size_t nlabels,
				 const double *buckets, size_t nb)
{
	struct family *f = calloc(1, sizeof(*f));
	bool ok;

	if (f == NULL)
		return NULL;
	f->type = type;
	f->nlabels = nlabels;
	f->nb = nb;
	f->tail = &f->head;
	f->name = strdup(name);
	f->help = strdup(help != NULL ? help : "");
	f->labels = calloc(nlabels + 1, sizeof(char *));
	f->bounds = calloc(nb + 1, sizeof(double));
	ok = f->name != NULL && f->help != NULL && f->labels != NULL &&
	     f->bounds != NULL;
	for (size_t i = 0; ok && i < nlabels; i++)
		ok = (f->labels[i] = strdup(labels[2 * i])) != NULL;
	if (!ok) {
		family_free(f);
		return NULL;
	}
	if (nb > 0)
		memcpy(f->bounds, buckets, nb * sizeof(*buckets));
	return f;
}

static struct apphost_metric *series_new(struct family *f,
					 const char *const *labels)
{
	struct apphost_metric *m = calloc(1, sizeof(*m));
	bool ok;

	if (m == NULL)
		return NULL;
	m->fam = f;
	m->values = calloc(f->nlabels + 1, sizeof(char *));
	ok = m->values != NULL;
	for (size_t i = 0; ok && i < f->nlabels; i++)
		ok = (m->values[i] = strdup(labels[2 * i + 1])) != NULL;
	if (ok && f->type == APPHOST_METRIC_HISTOGRAM)
		ok = (m->count = calloc(f->nb + 1, sizeof(*m->count))) != NULL;
	if (!ok) {
		series_free(m);
		return NULL;
	}
	atomic_init(&m->bits, to_bits(0));
	for (size_t i = 0; m->count != NULL && i <= f->nb; i++)
		atomic_init(&m->count[i], 0);
	return m;
}

int apphost_metrics_get(struct apphost_metrics *r, int type, const char *name,
			const char *help, const char *const *labels,
			const double *buckets, size_t nbuckets,
			struct apphost_metric **out)
{
	size_t nlabels = count_labels(labels);
	struct family *f;
	struct apphost_metric *m;
	int rc = 0;

	if (out == NULL)
		return APPHOST_EINVAL;
	*out = NULL;
	if (r == NULL)
		return APPHOST_ENOMEM;
	rc = check_request(type, name, labels, nlabels, buckets, nbuckets);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&r->mu);
	for (f = r->head; f != NULL; f = f->next)
		if (strcmp(f->name, name) == 0)
			break;
	if (f != NULL &&
	    !family_agrees(f, type, help, labels, nlabels, buckets, nbuckets)) {
		rc = APPHOST_EINVAL;
		goto out;
	}
	if (f == NULL) {
		f = family_new(type, name, help, labels, nlabels, buckets,
			       nbuckets);
		if (f == NULL) {
			rc = APPHOST_ENOMEM;
			goto out;
		}
		*r->tail = f;
		r->tail = &f->next;
	}
	for (m = f->head; m != NULL; m = m->next) {
		size_t i = 0;

		while (i < nlabels &&
		       strcmp(m->values[i], labels[2 * i + 1]) == 0)
			i++;
		if (i == nlabels)
			break;
	}
	if (m == NULL) {
		m = series_new(f, labels);
		if (m == NULL) {
			rc = APPHOST_ENOMEM;
			goto out;
		}
		*f->tail = m;
		f->tail = &m->next;
	}
	*out = m;
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* ---- exposition ---------------------------------------------------------- */

static void buf_str(struct apphost_strbuf *b, const char *s)
{
	apphost_strbuf_put(b, s, strlen(s));
}

/* HELP text escapes \ and newline; label values also ". */
static void buf_escaped(struct apphost_strbuf *b, const char *s, bool quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			buf_str(b, "\\\\");
		else if (*s == '\n')
			buf_str(b, "\\n");
		else if (quote && *s == '"')
			buf_str(b, "\\\"");
		else
			apphost_strbuf_put(b, s, 1);
	}
}

/* A sample value: shortest text that reads back as the same double. */
static void buf_double(struct apphost_strbuf *b, double v)
{
	char t[40];

	if (isnan(v))
		snprintf(t, sizeof(t), "NaN");
	else if (isinf(v))
		snprintf(t, sizeof(t), v > 0 ? "+Inf" : "-Inf");
	else {
		snprintf(t, sizeof(t), "%.15g", v);
		if (strtod(t, NULL) != v)
			snprintf(t, sizeof(t), "%.17g", v);
	}
	buf_str(b, t);
}

static void buf_u64(struct apphost_strbuf *b, uint64_t v)
{
	char t[24];

	snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
	buf_str(b, t);
}

/* name{labels[,le="..."]} -- braces only when there is a label. */
static void buf_series_name(struct apphost_strbuf *b,
			    const struct apphost_metric *m, const char *suffix,
			    const char *le)
{
	const struct family *f = m->fam;

	buf_str(b, f->name);
	buf_str(b, suffix);
	if (f->nlabels == 0 && le == NULL)
		return;
	buf_str(b, "{");
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i > 0)
			buf_str(b, ",");
		buf_str(b, f->labels[i]);
		buf_str(b, "=\"");
		buf_escaped(b, m->values[i], true);
		buf_str(b, "\"");
	}
	if (le != NULL) {
		buf_str(b, f->nlabels > 0 ? ",le=\"" : "le=\"");
		buf_str(b, le);
		buf_str(b, "\"");
	}
	buf_str(b, "}");
}

static void render_histogram(struct apphost_strbuf *b,
			     const struct apphost_metric *m)
{
	const struct family *f = m->fam;
	uint64_t cum = 0;

	for (size_t i = 0; i <= f->nb; i++) {
		struct apphost_strbuf le = {0};

		cum += atomic_load_explicit(&m->count[i], memory_order_relaxed);
		if (i < f->nb)
			buf_double(&le, f->bounds[i]);
		else
			buf_str(&le, "+Inf");
		if (le.oom) {
			b->oom = true;
			return;
		}
		buf_series_name(b, m, "_bucket", le.p);
		free(le.p);
		buf_str(b, " ");
		buf_u64(b, cum);
		buf_str(b, "\n");
	}
	buf_series_name(b, m, "_sum", NULL);
	buf_str(b, " ");
	buf_double(b, from_bits(atomic_load_explicit(
			  (_Atomic uint64_t *)&m->bits, memory_order_relaxed)));
	buf_str(b, "\n");
	/* _count is the +Inf bucket, so the two always agree. */
	buf_series_name(b, m, "_count", NULL);
	buf_str(b, " ");
	buf_u64(b, cum);
	buf_str(b, "\n");
}

int apphost_metrics_render(struct apphost_metrics *r, char **out, size_t *len)
{
	static const char *const type_name[] = {"counter", "gauge",
						"histogram"};
	struct apphost_strbuf b = {0};

	*out = NULL;
	*len = 0;
	buf_str(&b, ""); /* an empty registry still renders "" */
	if (r != NULL) {
		pthread_mutex_lock(&r->mu);
		for (const struct family *f = r->head; f != NULL; f = f->next) {
			buf_str(&b, "# HELP ");
			buf_str(&b, f->name);
			buf_str(&b, " ");
			buf_escaped(&b, f->help, false);
			buf_str(&b, "\n# TYPE ");
			buf_str(&b, f->name);
			buf_str(&b, " ");
			buf_str(&b, type_name[f->type]);
			buf_str(&b, "\n");
			for (const struct apphost_metric *m = f->head;
			     m != NULL; m = m->next) {
				if (f->type == APPHOST_METRIC_HISTOGRAM) {
					render_histogram(&b, m);
					continue;
				}
				buf_series_name(&b, m, "", NULL);
				buf_str(&b, " ");
				buf_double(&b, apphost_metric_value(m));
				buf_str(&b, "\n");
			}
		}
		pthread_mutex_unlock(&r->mu);
	}
	*out = apphost_strbuf_take(&b, len);
	return *out != NULL ? 0 : APPHOST_ENOMEM;
}

/* ---- the default registry ------------------------------------------------ */

static struct apphost_metrics *default_registry;
static struct apphost_metric *hot_swaps;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
	if (apphost_metrics_new(&default_registry) < 0)
		return;
	(void)apphost_metrics_get(
	    default_registry, APPHOST_METRIC_COUNTER, "apphost_hot_swaps_total",
	    "Component hot swaps completed.", NULL, NULL, 0, &hot_swaps);
}

struct apphost_metrics *apphost_metrics_default(void)
{
	pthread_once(&default_once, default_init);
	return default_registry;
}

void apphost_metrics_hot_swap_inc(void)
{
	(void)apphost_metrics_default();
	apphost_metric_add(hot_swaps, 1);
}
