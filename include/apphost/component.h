/*
 * apphost/component.h -- the whole contract between apphost and a component.
 *
 * This is the only header a component includes from this project. A
 * component is a shared object that:
 *
 *   1. declares its identity with one line at file scope:
 *          APPHOST_COMPONENT("health_events", "1.0.0");
 *      which defines the exported function apphost_component_magic();
 *   2. exports the lifecycle functions declared below
 *      (apphost_component_init / _start / _stop), and optionally
 *      apphost_component_export / _import for hot swap;
 *   3. is built with -fvisibility=hidden so nothing else is exported.
 *
 * The host dlopen()s the file with RTLD_NOW | RTLD_LOCAL, calls the magic
 * function before anything else and refuses the component unless the
 * magic number matches, the ABI major equals the host's, the ABI minor
 * is <= the host's and (from ABI 1.2) the hiredis it was built against is
 * the host's. Each refusal names the file, the field and both values.
 *
 * Versioning: a minor version only appends (to the magic block, to the
 * services table), so a component built for 1.0 loads in a 1.2 host; the
 * host reads a field of the magic block only when the component's minor
 * has it, and a component tests the table with APPHOST_SVC_HAS before
 * using a field newer than 1.0. A major version changes what exists.
 *   1.1  metrics and readiness in the services table
 *   1.2  hiredis_major/minor in the magic block
 *   1.3  APPHOST_EPERM and APPHOST_EAUTH: a lease refused for a
 *        permission or for the credentials is told from an unreachable
 *        server (a host gives a component built before 1.3
 *        APPHOST_ECONN instead, as it always did); the optional export
 *        apphost_component_check (apphost --check --connect)
 *
 * Threads: init, start, export and import are called on the host's main
 * thread; stop is called on a short-lived host thread while the main
 * thread waits for it with the shutdown deadline (so an overrunning stop
 * can be reported). None of them runs concurrently with another for the
 * same component.
 * The services table may be used from any thread unless noted otherwise.
 *
 * Errors: every function returning int returns 0 on success and a negative
 * APPHOST_E* code on failure; apphost_strerror() turns a code into text.
 */
#ifndef APPHOST_COMPONENT_H
#define APPHOST_COMPONENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions --------------------------------------------------------- */

#define APPHOST_MAGIC	  0x41504831u /* "APH1" */
#define APPHOST_ABI_MAJOR 1
#define APPHOST_ABI_MINOR 3

/*
 * The hiredis a component is built against, recorded in its magic block
 * (ABI 1.2): the host lends its own redisContext, whose layout differs
 * between hiredis releases, so a mismatch is refused. 0.0 when the
 * component was built without hiredis's headers (it cannot use the
 * context then, and any host accepts it).
 */
#if defined(__has_include)
#if __has_include(<hiredis/hiredis.h>)
#include <hiredis/hiredis.h>
#endif
#endif
#if defined(HIREDIS_MAJOR) && defined(HIREDIS_MINOR)
#define APPHOST_HIREDIS_MAJOR HIREDIS_MAJOR
#define APPHOST_HIREDIS_MINOR HIREDIS_MINOR
#else
#define APPHOST_HIREDIS_MAJOR 0
#define APPHOST_HIREDIS_MINOR 0
#endif

#if defined(__GNUC__)
#define APPHOST_EXPORT	     __attribute__((visibility("default")))
#define APPHOST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define APPHOST_EXPORT
#define APPHOST_PRINTF(a, b)
#endif

/* ---- error codes ------------------------------------------------------ */

/*
 * XX(name, value, text) for every APPHOST_E* code: the one list the enum,
 * apphost_strerror() and apphost_err_name() are generated from. A
 * component may reuse it for codes of its own (values below -16 are
 * never the host's).
 */
#define APPHOST_ERRNO_MAP(XX)                                                  \
	XX(OK, 0, "success")                                                   \
	XX(EINVAL, -1, "invalid argument")	/* bad argument or config */   \
	XX(ENOMEM, -2, "out of memory")		/* allocation failed */        \
	XX(ETIMEDOUT, -3, "timed out")		/* a deadline passed */        \
	XX(ECONN, -4, "connection failed")	/* a server unreachable */     \
	XX(EIO, -5, "I/O error")		/* failed mid-request */       \
	XX(ESTATE, -6, "wrong state")		/* wrong lifecycle state */    \
	XX(ENOTSUP, -7, "not supported")	/* optional feature absent */  \
	XX(EPROTO, -8, "protocol error")	/* unexpected answer */        \
	XX(EPERM, -9, "permission denied")	/* 1.3: the server refused a   \
						   privilege (ACL, GRANT) */   \
	XX(EAUTH, -10, "authentication failed") /* 1.3: credentials refused */

enum {
#define APPHOST_ERRNO_ENUM_(name, value, text) APPHOST_##name = (value),
	APPHOST_ERRNO_MAP(APPHOST_ERRNO_ENUM_)
#undef APPHOST_ERRNO_ENUM_
};

/* Text for an APPHOST_E* code. Static string; any thread. */
static inline const char *apphost_strerror(int code)
{
	switch (code) {
#define APPHOST_ERRNO_TEXT_(name, value, text)                                 \
	case (value): return (text);
		APPHOST_ERRNO_MAP(APPHOST_ERRNO_TEXT_)
#undef APPHOST_ERRNO_TEXT_
	default: return "unknown error";
	}
}

/* The code's name without its prefix ("ETIMEDOUT"), for logs and tests. */
static inline const char *apphost_err_name(int code)
{
	switch (code) {
#define APPHOST_ERRNO_NAME_(name, value, text)                                 \
	case (value): return #name;
		APPHOST_ERRNO_MAP(APPHOST_ERRNO_NAME_)
#undef APPHOST_ERRNO_NAME_
	default: return "EUNKNOWN";
	}
}

/* ---- the magic block -------------------------------------------------- */

typedef struct apphost_magic {
	uint32_t magic;	    /* APPHOST_MAGIC */
	uint16_t abi_major; /* APPHOST_ABI_MAJOR the component was built with */
	uint16_t abi_minor; /* APPHOST_ABI_MINOR the component was built with */
	uint32_t services_size; /* sizeof(apphost_services) it was built with */
	const char *name;	/* component name, used in every log line */
	const char *version;	/* component version string */
	/* ---- ABI 1.2 (read only when abi_minor >= 2) ---- */
	uint16_t hiredis_major; /* APPHOST_HIREDIS_MAJOR it was built with */
	uint16_t hiredis_minor; /* APPHOST_HIREDIS_MINOR, 0.0: no hiredis */
} apphost_magic;

/*
 * APPHOST_COMPONENT(name, version): define the exported magic function.
 * Use exactly once per component, at file scope.
 */
#define APPHOST_COMPONENT(name_, version_)                                     \
	APPHOST_EXPORT const apphost_magic *apphost_component_magic(void)      \
	{                                                                      \
		static const apphost_magic m = {                               \
		    APPHOST_MAGIC,                                             \
		    APPHOST_ABI_MAJOR,                                         \
		    APPHOST_ABI_MINOR,                                         \
		    (uint32_t)sizeof(struct apphost_services),                 \
		    (name_),                                                   \
		    (version_),                                                \
		    APPHOST_HIREDIS_MAJOR,                                     \
		    APPHOST_HIREDIS_MINOR};                                    \
		return &m;                                                     \
	}                                                                      \
	extern int apphost_component_magic_declared_

/* ---- the services table ----------------------------------------------- */

enum apphost_log_level {
	APPHOST_LOG_DEBUG = 0,
	APPHOST_LOG_INFO = 1,
	APPHOST_LOG_WARN = 2,
	APPHOST_LOG_ERROR = 3,
};

struct redisContext;   /* hiredis */
struct pg_conn;	       /* libpq's PGconn */
struct apphost_metric; /* one metric time series, owned by the host */

/*
 * What the host supplies. The host passes a table whose `size` is
 * sizeof(apphost_services) as the host was built; a component built
 * against an older, shorter table only reads the fields it knows. New
 * fields are only ever appended. `host` is the opaque first argument of
 * every function; it stays valid until the component's stop returns.
 */
typedef struct apphost_services {
	uint32_t size; /* sizeof(apphost_services) in the host */
	void *host;    /* opaque; pass to every function below */

	/*
	 * Log one line. The host adds time, level and component name. `msg`
	 * is a short constant message; `fields_fmt` (may be NULL) formats
	 * space-separated key=value fields, e.g. "game_id=%s entry=%s".
	 * Values are written as given: never pass secrets. Any thread.
	 */
	void (*log)(void *host, int level, const char *msg,
		    const char *fields_fmt, ...) APPHOST_PRINTF(4, 5);

	/* true when a line at `level` would be written. Any thread. */
	bool (*log_enabled)(void *host, int level);

	/*
	 * Configuration value for `key` (environment over --config file), or
	 * NULL when unset. The string is owned by the host and stays valid
	 * until stop returns. Any thread.
	 */
	const char *(*config_get)(void *host, const char *key);

	/*
	 * Lease an exclusive, connected Redis context (hiredis). Waits up to
	 * timeout_ms for a free pooled connection; connects lazily.
	 * Returns 0 and sets *out, APPHOST_ETIMEDOUT when the pool stayed
	 * exhausted, APPHOST_ECONN when the server cannot be reached,
	 * (1.3) APPHOST_EAUTH when it refused the credentials and
	 * APPHOST_EPERM when it refused a command the connection needs
	 * (SELECT of the db, ROLE), also during the reconnect backoff. The
	 * context belongs to the caller until redis_release; use it from one
	 * thread at a time. Its command timeout is the host default (5 s)
	 * at lease time; the caller may change it with redisSetTimeout.
	 */
	int (*redis_lease)(void *host, uint32_t timeout_ms,
			   struct redisContext **out);
	/*
	 * Return a leased context. broken=true when it returned an I/O or
	 * protocol error (or its state is unknown): the host frees it and
	 * connects anew on a later lease. NULL is a no-op.
	 */
	void (*redis_release)(void *host, struct redisContext *c, bool broken);

	/* As redis_lease, for PostgreSQL (libpq), APPHOST_POSTGRES_DSN. */
	int (*pg_lease)(void *host, uint32_t timeout_ms, struct pg_conn **out);
	/*
	 * Return a leased PGconn. broken=true when it failed or is left in a
	 * transaction/pipeline: the host closes it. NULL is a no-op.
	 */
	void (*pg_release)(void *host, struct pg_conn *c, bool broken);

	/* Monotonic clock in nanoseconds. Any thread. */
	uint64_t (*now_ns)(void *host);

	/* ---- ABI 1.1: metrics and readiness (check size before use) ---- */

	/*
	 * Find or create one time series of a metric family, for
	 * /metrics (Prometheus text format). `type` is an
	 * APPHOST_METRIC_* value; `name` follows Prometheus conventions
	 * (counters end in _total, base units: _seconds, _bytes); `help` is
	 * one line. `labels` is NULL or a NULL-terminated list of
	 * name, value, name, value, ... (values are escaped by the host).
	 * Histograms take `nbuckets` strictly increasing upper bounds
	 * (+Inf is implied); others pass NULL, 0. The first call for a name
	 * fixes its type, help, label names and buckets; a later call that
	 * disagrees is refused with APPHOST_EINVAL. Returns 0 and *out, a
	 * handle valid until the host exits (the same series is returned
	 * again after a hot swap, so counters keep counting), or
	 * APPHOST_EINVAL / APPHOST_ENOMEM. Takes a lock: look handles up
	 * once (init), then update them on the hot path. Any thread.
	 */
	int (*metric_get)(void *host, int type, const char *name,
			  const char *help, const char *const *labels,
			  const double *buckets, size_t nbuckets,
			  struct apphost_metric **out);
	/*
	 * Counter: add v >= 0 (a negative v is ignored). Gauge: add v (may be
	 * negative). Lock-free (atomics). m NULL is a no-op. Any thread.
	 */
	void (*metric_add)(void *host, struct apphost_metric *m, double v);
	/* Gauge: set to v. Lock-free; m NULL is a no-op. Any thread. */
	void (*metric_set)(void *host, struct apphost_metric *m, double v);
	/* Histogram: record one observation. Lock-free; NULL no-op. */
	void (*metric_observe)(void *host, struct apphost_metric *m, double v);

	/*
	 * Report readiness for /readyz. A running component that never
	 * calls this counts as ready; once it calls, the last report stands
	 * (ready=false with a short plain-text `reason`, copied, e.g.
	 * "postgres unreachable: connection refused"; no secrets; with
	 * ready=true a non-empty `reason` is a note /readyz shows, e.g.
	 * "standby"). /readyz answers anyone, so it shows only the generic
	 * head before the first ':' or line end ("postgres unreachable");
	 * the whole reason is logged. Call it on changes, not per entry. Any
	 * thread, from init on.
	 */
	void (*set_ready)(void *host, bool ready, const char *reason);
} apphost_services;

/* Metric types for apphost_services.metric_get (ABI 1.1). */
enum apphost_metric_type {
	APPHOST_METRIC_COUNTER = 0,
	APPHOST_METRIC_GAUGE = 1,
	APPHOST_METRIC_HISTOGRAM = 2,
};

/* Services table size of ABI 1.0, before the metrics and readiness. */
#define APPHOST_SERVICES_SIZE_1_0 offsetof(apphost_services, metric_get)

/*
 * Whether the table a component was given is long enough to hold `field`
 * (a host older than the component's header passes a shorter one):
 *     if (APPHOST_SVC_HAS(svc, set_ready)) svc->set_ready(...);
 */
#define APPHOST_SVC_HAS(svc, field)                                            \
	((svc)->size >= offsetof(apphost_services, field) +                    \
			    sizeof(((const apphost_services *)0)->field))

/* ---- what a component exports ----------------------------------------- */

/*
 * The magic function, defined by APPHOST_COMPONENT(). Declared here so
 * the definition has a prototype (-Wmissing-prototypes). Called by the
 * host before anything else; returns a static block. Any thread.
 */
APPHOST_EXPORT const apphost_magic *apphost_component_magic(void);

/*
 * init: read and validate configuration, allocate state. No threads, no
 * held leases. On success sets *state (opaque to the host). On failure it
 * frees what it allocated, logs why, and returns a negative code; the host
 * then never calls stop for it. `svc` stays valid until stop returns.
 */
APPHOST_EXPORT int apphost_component_init(const apphost_services *svc,
					  void **state);

/* start: begin work (start threads). A failure leaves it stoppable. */
APPHOST_EXPORT int apphost_component_start(void *state);

/*
 * stop: finish the work in hand, end its threads, return every lease and
 * free `state`. Called for every successfully initialised component,
 * started or not; must return within the host's shutdown deadline.
 */
APPHOST_EXPORT int apphost_component_stop(void *state);

/*
 * Optional, for hot swap. export: serialise the state worth carrying into
 * a fresh malloc()ed buffer (*buf, *len) that the host free()s; called on
 * a started component just before its stop. import: called on a new,
 * initialised but not yet started instance with a buffer produced by
 * export of a component with the same name; a buffer it cannot read is
 * ignored with a warning (returns APPHOST_EINVAL) and the swap proceeds.
 */
APPHOST_EXPORT int apphost_component_export(void *state, void **buf,
					    size_t *len);
APPHOST_EXPORT int apphost_component_import(void *state, const void *buf,
					    size_t len);

/*
 * Optional (ABI 1.3), for `apphost --check --connect`: connect and check
 * that the component could do its work (the servers answer, its
 * permissions suffice), writing nothing: nothing it would only do while
 * running (no lease of leadership, no fence raised, no script loaded).
 * Called on the main thread on an initialised component that is never
 * started, then stop. Returns 0 when it could work, else a negative
 * code; either way writes one line of what it found into `report` (cap
 * bytes, NUL-terminated; no secrets).
 */
APPHOST_EXPORT int apphost_component_check(void *state, char *report,
					   size_t cap);

/* Symbol names, for the host's dlsym. */
#define APPHOST_SYM_MAGIC  "apphost_component_magic"
#define APPHOST_SYM_INIT   "apphost_component_init"
#define APPHOST_SYM_START  "apphost_component_start"
#define APPHOST_SYM_STOP   "apphost_component_stop"
#define APPHOST_SYM_EXPORT "apphost_component_export"
#define APPHOST_SYM_IMPORT "apphost_component_import"
#define APPHOST_SYM_CHECK  "apphost_component_check"

typedef const apphost_magic *(*apphost_magic_fn)(void);
typedef int (*apphost_init_fn)(const apphost_services *, void **);
typedef int (*apphost_start_fn)(void *);
typedef int (*apphost_stop_fn)(void *);
typedef int (*apphost_export_fn)(void *, void **, size_t *);
typedef int (*apphost_import_fn)(void *, const void *, size_t);
typedef int (*apphost_check_fn)(void *, char *, size_t);

#ifdef __cplusplus
}
#endif
#endif /* APPHOST_COMPONENT_H */
