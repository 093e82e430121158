/*
 * mock_host.h -- a test double of apphost_services: captured log lines
 * with levels, a config map, lease switches and a monotonic clock.
 *
 * Leases: a switch makes redis_lease / pg_lease fail with a given code;
 * otherwise a lease asks the connector installed with
 * mock_host_set_redis_connector / _pg_connector (so a suite can hand out
 * real connections, e.g. from APPHOST_REDIS_URL), and without one it
 * returns APPHOST_ECONN. Leases and releases are counted so a test can
 * check that every lease came back.
 *
 * Every function may be called from any thread (one mutex), except
 * mock_host_free.
 */
#ifndef TEST_MOCK_HOST_H
#define TEST_MOCK_HOST_H

#include <apphost/component.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mock_host mock_host;

/* New host with no config, log level debug. NULL on ENOMEM. */
mock_host *mock_host_new(void);
/* Free the host and its captured lines. NULL is a no-op. */
void mock_host_free(mock_host *m);
/* The services table; valid until mock_host_free. */
const apphost_services *mock_host_services(mock_host *m);

/* ---- log ---- */

/* Lowest level log_enabled reports as enabled (default DEBUG). Lines
 * below it are not captured either, as the real host would drop them. */
void mock_host_set_log_level(mock_host *m, int level);
/* Number of captured lines. */
size_t mock_host_log_lines(mock_host *m);
/*
 * Copy line i ("<msg> <fields>") into out (cap bytes) and return its
 * level, or -1 when i is out of range.
 */
int mock_host_log_line(mock_host *m, size_t i, char *out, size_t cap);
/* Lines at `level` or above whose text contains `needle` (NULL: any). */
size_t mock_host_log_count(mock_host *m, int level, const char *needle);
/* Highest level among lines containing `needle`, or -1 for none. */
int mock_host_log_max_level(mock_host *m, const char *needle);
/* Longest captured line in bytes. */
size_t mock_host_log_longest(mock_host *m);
/* Forget captured lines. */
void mock_host_log_clear(mock_host *m);

/* ---- config ---- */

/* Set (value != NULL) or unset a key. 0 or APPHOST_ENOMEM. */
int mock_host_config_set(mock_host *m, const char *key, const char *value);

/* ---- leases ---- */

/* 0: leases behave normally; else redis_lease / pg_lease return code. */
void mock_host_fail_redis(mock_host *m, int code);
void mock_host_fail_pg(mock_host *m, int code);

typedef int (*mock_redis_connect_fn)(void *ud, struct redisContext **out);
typedef void (*mock_redis_close_fn)(void *ud, struct redisContext *c);
typedef int (*mock_pg_connect_fn)(void *ud, struct pg_conn **out);
typedef void (*mock_pg_close_fn)(void *ud, struct pg_conn *c);

/*
 * Install how a lease gets a connection and how a release disposes of
 * it (called with broken=any: the mock does not pool). NULL connect
 * restores the default (APPHOST_ECONN).
 */
void mock_host_set_redis_connector(mock_host *m, mock_redis_connect_fn fn,
				   mock_redis_close_fn close, void *ud);
void mock_host_set_pg_connector(mock_host *m, mock_pg_connect_fn fn,
				mock_pg_close_fn close, void *ud);

/* Leases handed out and not yet released (redis + pg). */
int mock_host_leases_out(mock_host *m);
/* Releases that said broken=true. */
int mock_host_broken_releases(mock_host *m);

/* ---- clock ---- */

/* Add ns to what now_ns returns (CLOCK_MONOTONIC plus the offset). */
void mock_host_advance(mock_host *m, uint64_t ns);

#endif /* TEST_MOCK_HOST_H */
