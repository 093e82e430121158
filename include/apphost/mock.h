/*
 * apphost/mock.h -- a mock host for a component's own tests.
 *
 * libapphost-mock (pkg-config apphost-mock; static) gives a component the
 * services table apphost would give it, and lets the test steer and read
 * everything behind it:
 *
 *   configuration  apphost_mock_config_set: what config_get returns
 *   log            every line captured with its level, message and fields;
 *                  count, match and read them back
 *   leases         real connections from APPHOST_REDIS_URL and
 *                  APPHOST_POSTGRES_DSN (apphost_mock_use_env_servers), or
 *                  your own connector, or a lease that fails with a code
 *                  of your choice (to test the component's error paths);
 *                  leases out and broken releases are counted
 *   metrics        the host's own registry (the same validation of names,
 *                  labels and buckets), read back by series name
 *   readiness      the last set_ready report
 *   clock          now_ns is CLOCK_MONOTONIC plus an offset you advance
 *   lifecycle      init/start/stop/export/import of a component linked
 *                  into the test (APPHOST_MOCK_LINKED) or dlopen()ed from
 *                  its .so, with the host's ABI checks (also the hiredis
 *                  version of ABI 1.2)
 *
 * A typical Criterion test:
 *
 *     apphost_mock *m = apphost_mock_new();
 *     apphost_mock_component *c;
 *     apphost_mock_config_set(m, "HEARTBEAT_KEY", "hb:test");
 *     cr_assert(apphost_mock_use_env_servers(m) == 0);
 *     cr_assert(apphost_mock_attach(m, &APPHOST_MOCK_LINKED, &c, NULL, 0) ==
 * 0); cr_assert(apphost_mock_init(c) == 0); cr_assert(apphost_mock_start(c) ==
 * 0);
 *     ... wait for the effect, read apphost_mock_metric(m, "x_total", &v) ...
 *     cr_assert(apphost_mock_stop(c) == 0);
 *     cr_assert_eq(apphost_mock_leases_out(m), 0);   every lease returned
 *     apphost_mock_component_free(c);
 *     apphost_mock_free(m);
 *
 * The mock does not pool: each lease is a new connection, closed on its
 * release whatever `broken` says (which is counted).
 *
 * Threads: every function may be called from any thread (one mutex
 * inside), except apphost_mock_free and apphost_mock_component_free, and
 * the lifecycle calls, which (as in the host) must not run concurrently
 * for one component. The services table may be used from any thread.
 *
 * Errors: functions returning int return 0 or a negative APPHOST_E* code
 * (apphost_strerror). Nothing here aborts or logs: the test asserts.
 */
#ifndef APPHOST_MOCK_H
#define APPHOST_MOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <apphost/component.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apphost_mock apphost_mock;

/*
 * A new mock: no configuration, log level debug, leases failing with
 * APPHOST_ECONN until a connector is installed. NULL when out of memory.
 * Free with apphost_mock_free (NULL is a no-op) once no component uses it.
 */
apphost_mock *apphost_mock_new(void);
void apphost_mock_free(apphost_mock *m);

/* The services table to hand a component; valid until apphost_mock_free. */
const apphost_services *apphost_mock_services(apphost_mock *m);

/* ---- configuration ---------------------------------------------------- */

/*
 * Set `key` to `value` (both copied), or unset it (value NULL). A value
 * returned by config_get earlier stays valid until apphost_mock_free.
 * Returns 0 or APPHOST_ENOMEM.
 */
int apphost_mock_config_set(apphost_mock *m, const char *key,
			    const char *value);

/* ---- log -------------------------------------------------------------- */

/*
 * Lowest level captured and reported enabled by log_enabled (default
 * APPHOST_LOG_DEBUG): below it a line is dropped, as the host would.
 */
void apphost_mock_set_log_level(apphost_mock *m, int level);
/* Also print each captured line to f ("[level] msg fields"); NULL: off. */
void apphost_mock_log_echo(apphost_mock *m, FILE *f);
/* Number of captured lines. */
size_t apphost_mock_log_lines(apphost_mock *m);
/*
 * Line i: its level (APPHOST_LOG_*), or -1 when i is out of range. Copies
 * its message into msg and its formatted fields ("" when none) into
 * fields, each truncated to its cap; either may be NULL with cap 0.
 */
int apphost_mock_log_get(apphost_mock *m, size_t i, char *msg, size_t msgcap,
			 char *fields, size_t fieldscap);
/* Line i as one text, "msg" or "msg fields"; its level or -1. */
int apphost_mock_log_line(apphost_mock *m, size_t i, char *out, size_t cap);
/* Lines at `level` or above whose text contains `needle` (NULL: any). */
size_t apphost_mock_log_count(apphost_mock *m, int level, const char *needle);
/*
 * Lines at `level` or above whose message equals `msg` (NULL: any) and
 * whose fields contain `fields` (NULL: any), e.g. ("dependency failing",
 * "dependency=redis").
 */
size_t apphost_mock_log_match(apphost_mock *m, int level, const char *msg,
			      const char *fields);
/* Highest level among lines containing `needle` (NULL: any); -1: none. */
int apphost_mock_log_max_level(apphost_mock *m, const char *needle);
/* Longest captured line ("msg fields") in bytes. */
size_t apphost_mock_log_longest(apphost_mock *m);
/* Forget every captured line. */
void apphost_mock_log_clear(apphost_mock *m);

/* ---- leases ----------------------------------------------------------- */

/*
 * 0: leases behave normally; else every redis_lease (pg_lease) returns
 * `code` (e.g. APPHOST_ECONN, APPHOST_ETIMEDOUT, or from ABI 1.3
 * APPHOST_EPERM and APPHOST_EAUTH, as a host returns them for a refused
 * privilege or refused credentials) until set back to 0.
 */
void apphost_mock_fail_redis(apphost_mock *m, int code);
void apphost_mock_fail_pg(apphost_mock *m, int code);

/* How a lease gets a connection, and how its release disposes of it. */
typedef int (*apphost_mock_redis_connect_fn)(void *ud,
					     struct redisContext **out);
typedef void (*apphost_mock_redis_close_fn)(void *ud, struct redisContext *c);
typedef int (*apphost_mock_pg_connect_fn)(void *ud, struct pg_conn **out);
typedef void (*apphost_mock_pg_close_fn)(void *ud, struct pg_conn *c);

/*
 * Install a connector (connect returns 0 and *out, or a negative code
 * that the lease returns). NULL connect: leases fail with APPHOST_ECONN.
 */
void apphost_mock_set_redis_connector(apphost_mock *m,
				      apphost_mock_redis_connect_fn connect,
				      apphost_mock_redis_close_fn close,
				      void *ud);
void apphost_mock_set_pg_connector(apphost_mock *m,
				   apphost_mock_pg_connect_fn connect,
				   apphost_mock_pg_close_fn close, void *ud);

/*
 * Connect leases to the servers of APPHOST_REDIS_URL
 * (redis://[[user]:password@]host[:port][/db]) and APPHOST_POSTGRES_DSN
 * (libpq conninfo or URI), read now. Returns 0, or APPHOST_EINVAL when
 * either is unset or the URL does not parse (the test then skips or
 * fails as it sees fit).
 */
int apphost_mock_use_env_servers(apphost_mock *m);

/*
 * A direct connection for the test's own setup and checks (the caller
 * frees it with redisFree / PQfinish): to `url` / `dsn`, or to the
 * environment's when NULL. Redis gets AUTH and SELECT from the URL and a
 * 5 s command timeout, as a host lease. Returns 0 and *out, APPHOST_EINVAL
 * (unset or unparsable), APPHOST_ECONN (with the reason in err, no
 * password in it) or APPHOST_ENOMEM.
 */
int apphost_mock_connect_redis(const char *url, struct redisContext **out,
			       char *err, size_t errlen);
int apphost_mock_connect_pg(const char *dsn, struct pg_conn **out, char *err,
			    size_t errlen);

/* Leases handed out and not yet released (Redis and PostgreSQL). */
int apphost_mock_leases_out(apphost_mock *m);
/* Leases that succeeded, ever. */
int apphost_mock_leases_total(apphost_mock *m);
/* Releases that said broken=true. */
int apphost_mock_broken_releases(apphost_mock *m);

/* ---- clock ------------------------------------------------------------ */

/* Add ns to what now_ns returns (CLOCK_MONOTONIC plus the offset). */
void apphost_mock_advance(apphost_mock *m, uint64_t ns);

/* ---- metrics and readiness --------------------------------------------- */

/*
 * The value of one series as /metrics would show it, named like the
 * exposition does: "name" or "name{label=\"value\",...}" with the labels
 * in the order the component registered them; histograms as
 * "name_count", "name_sum" or "name_bucket{le=\"0.5\"}". Returns 0 and
 * *out, APPHOST_EINVAL when no such series exists, APPHOST_ENOMEM.
 */
int apphost_mock_metric(apphost_mock *m, const char *series, double *out);
/*
 * Everything registered, in the text exposition format 0.0.4: a
 * malloc()ed string the caller frees, or NULL when out of memory.
 */
char *apphost_mock_metrics_text(apphost_mock *m);

/*
 * The last set_ready report: true when ready or never reported (as the
 * host's /readyz counts a running component that never calls it). Copies
 * into reason (may be NULL) the reason of a not-ready report, or the note
 * of a ready one ("standby"; "" without one).
 */
bool apphost_mock_ready(apphost_mock *m, char *reason, size_t cap);
/* How many times set_ready was called. */
int apphost_mock_ready_reports(apphost_mock *m);

/* ---- driving a component ----------------------------------------------- */

/* The entry points of a component; export_/import_/check_ may be NULL. */
typedef struct apphost_mock_entry {
	apphost_magic_fn magic;
	apphost_init_fn init;
	apphost_start_fn start;
	apphost_stop_fn stop;
	apphost_export_fn export_;
	apphost_import_fn import_;
	apphost_check_fn check_; /* ABI 1.3 */
} apphost_mock_entry;

/*
 * The entry points of the component linked into this test program (its
 * objects or static library linked in; no export/import: fill an
 * apphost_mock_entry yourself to test those).
 */
#define APPHOST_MOCK_LINKED                                                    \
	((const apphost_mock_entry){apphost_component_magic,                   \
				    apphost_component_init,                    \
				    apphost_component_start,                   \
				    apphost_component_stop, NULL, NULL, NULL})

typedef struct apphost_mock_component apphost_mock_component;

/*
 * A component on mock m from its entry points, or loaded from `path` with
 * dlopen(RTLD_NOW | RTLD_LOCAL) and dlsym, as the host does. Both check
 * the magic block as the host does (magic number, ABI major equal, minor
 * not newer, services table size). Returns 0 and *out, or APPHOST_EINVAL
 * with the reason in err ("x.so: ABI major 2, host supports 1"; err may
 * be NULL), or APPHOST_ENOMEM. Free with apphost_mock_component_free.
 */
int apphost_mock_attach(apphost_mock *m, const apphost_mock_entry *entry,
			apphost_mock_component **out, char *err, size_t errlen);
int apphost_mock_load(apphost_mock *m, const char *path,
		      apphost_mock_component **out, char *err, size_t errlen);

/* Its magic block (name, version, ABI). */
const apphost_magic *apphost_mock_component_magic(apphost_mock_component *c);

/*
 * The lifecycle, in the host's order: init once, then start, then stop
 * (also after a failed start; not after a failed init). Each returns the
 * component's code, or APPHOST_ESTATE when called out of order (the
 * component is not called). export: on a started component, the buffer
 * is the caller's to free(). import: on an initialised, not yet started
 * one (export/import absent: APPHOST_ENOTSUP).
 */
int apphost_mock_init(apphost_mock_component *c);
int apphost_mock_start(apphost_mock_component *c);
int apphost_mock_stop(apphost_mock_component *c);
int apphost_mock_export(apphost_mock_component *c, void **buf, size_t *len);
int apphost_mock_import(apphost_mock_component *c, const void *buf, size_t len);
/*
 * check (ABI 1.3, `apphost --check --connect`): on an initialised, not
 * yet started one; its code and its one-line report (check_ absent, or a
 * loaded component older than 1.3: APPHOST_ENOTSUP).
 */
int apphost_mock_check(apphost_mock_component *c, char *report, size_t cap);

/*
 * Stop it if it is initialised or started (as the host does at exit),
 * dlclose a loaded one, free c. NULL is a no-op.
 */
void apphost_mock_component_free(apphost_mock_component *c);

#ifdef __cplusplus
}
#endif
#endif /* APPHOST_MOCK_H */
