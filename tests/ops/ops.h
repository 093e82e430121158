/*
 * ops.h -- helpers for the ops suite: a real HTTP client (curl(1)), free
 * ports, reading Prometheus samples, shell commands. (apphost as a
 * subprocess: tests/server/apphost_proc.h.)
 */
#ifndef TEST_OPS_H
#define TEST_OPS_H

#include <stdbool.h>
#include <stddef.h>

/* One HTTP exchange: status code (0 when curl failed) and body. */
typedef struct ops_resp {
	int status;
	char *body; /* malloc()ed, NUL-terminated; free with ops_resp_free */
	char *headers;
} ops_resp;

/*
 * curl -sS [extra args] http://127.0.0.1:<port><path>. `extra` is
 * inserted into the shell command as is (tests pass constant options).
 */
ops_resp ops_http(int port, const char *path, const char *extra);
void ops_resp_free(ops_resp *r);

/* A TCP port on 127.0.0.1 free right now. */
int ops_free_port(void);

/*
 * Value of the sample whose line starts with `series` followed by a
 * space (e.g. "x_total{a=\"b\"}"), or -1 when absent.
 */
double ops_sample(const char *exposition, const char *series);

/* Poll path until it answers want_status (or timeout_ms); true if so. */
bool ops_wait_status(int port, const char *path, int want_status,
		     int timeout_ms);

/*
 * A private scripts/services instance (its own Redis and PostgreSQL,
 * migrated) under $OPS_RUN_BASE, for a test that stops and starts its
 * servers without touching the shared ones.
 */
typedef struct ops_private {
	char run_dir[512];
	char redis_url[512], pg_dsn[512];
} ops_private;

/* Start one (tag names it among this process's); asserts it runs. */
void ops_private_start(ops_private *p, const char *tag);
/* scripts/services <what> on it (stop-postgres, ...); asserts success. */
void ops_private_do(const ops_private *p, const char *what);
/* Stop and remove it; a no-op when never started. For .fini. */
void ops_private_stop(ops_private *p);

/* Run a shell command; its exit status. */
int ops_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
