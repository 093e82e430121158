/*
 * metrics.h -- the host's metric registry (Prometheus text exposition
 * format 0.0.4).
 *
 * A registry holds metric families (counter, gauge, histogram with fixed
 * buckets), each with label names and any number of series (one per set
 * of label values). Looking a series up takes the registry lock; updating
 * one is lock-free (C11 atomics; doubles are stored as their bits and
 * added with a compare-and-swap loop). Series live as long as their
 * registry: handles never dangle, and a component that is swapped or
 * restarted gets the same series back, so counters keep counting.
 *
 * The process has one default registry (apphost_metrics_default()),
 * which the services table, the pools and /metrics use; tests make
 * private ones with apphost_metrics_new().
 *
 * Host metrics registered here:
 *   apphost_component_up{component}   see status.h
 *   apphost_hot_swaps_total           completed hot swaps
 *   apphost_pool_*{pool}              see pool.c
 *   apphost_redis_primary_changes_total  see pool_redis.c
 *
 * All functions may be called from any thread unless noted.
 */
#ifndef APPHOST_HOST_METRICS_H
#define APPHOST_HOST_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include <apphost/component.h>

struct apphost_metrics;

/*
 * A new, empty registry. Returns 0 and *out (free with
 * apphost_metrics_free) or APPHOST_ENOMEM.
 */
int apphost_metrics_new(struct apphost_metrics **out);

/* Free a registry and every series in it; NULL is a no-op. Only when no
 * thread can use its handles any more. */
void apphost_metrics_free(struct apphost_metrics *r);

/*
 * The process-wide registry, created on first use (NULL only when that
 * allocation failed, in which case every update is a no-op). Never freed.
 */
struct apphost_metrics *apphost_metrics_default(void);

/*
 * Find or create a series: the services table's metric_get (see
 * include/apphost/component.h for the rules), on registry r. Returns 0
 * and *out (owned by r), APPHOST_EINVAL (bad name, label or buckets, or
 * disagreeing with an earlier registration) or APPHOST_ENOMEM.
 */
int apphost_metrics_get(struct apphost_metrics *r, int type, const char *name,
			const char *help, const char *const *labels,
			const double *buckets, size_t nbuckets,
			struct apphost_metric **out);

/* Updates, lock-free; m NULL is a no-op. add: counter (v >= 0) or gauge;
 * set: gauge; observe: histogram. */
void apphost_metric_add(struct apphost_metric *m, double v);
void apphost_metric_set(struct apphost_metric *m, double v);
void apphost_metric_observe(struct apphost_metric *m, double v);

/* Counter or gauge: store v, a value counted elsewhere that a collector
 * samples (the kernel's CPU time); m NULL is a no-op. */
void apphost_metric_sample(struct apphost_metric *m, double v);

/* Current value of a counter or gauge (histograms: the count). */
double apphost_metric_value(const struct apphost_metric *m);

/*
 * Render r in the text exposition format 0.0.4: families in registration
 * order, each with # HELP and # TYPE, series in creation order,
 * histograms as cumulative _bucket{le=...}, _sum and _count. Returns 0
 * and a malloc()ed NUL-terminated text in *out (*len bytes) that the
 * caller frees, or APPHOST_ENOMEM.
 */
int apphost_metrics_render(struct apphost_metrics *r, char **out, size_t *len);

/* Default registry: one more completed hot swap (apphost_hot_swaps_total). */
void apphost_metrics_hot_swap_inc(void);

#endif
