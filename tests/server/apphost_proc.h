/*
 * apphost_proc.h -- apphost as a subprocess of a test: its environment,
 * spawning it with stderr appended to a log file, stopping it, and
 * reading that log.
 *
 * The child's environment is built in the parent (a copy of environ plus
 * the test's settings) and handed to posix_spawn(), so nothing runs
 * between fork and exec: safe in a test process with threads. The child's
 * stdout goes to /dev/null, so an orphaned apphost holds no pipe of the
 * test runner open.
 *
 * Functions assert (Criterion) on failures of their own; call them from a
 * test or its .init/.fini.
 */
#ifndef TEST_SERVER_APPHOST_PROC_H
#define TEST_SERVER_APPHOST_PROC_H

#include "redis_pg.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- environment ---- */

/* A child's environment: "KEY=VALUE" strings, NULL-terminated. */
typedef struct ap_env ap_env;

/* A copy of this process's environment; free with ap_env_free. */
ap_env *ap_env_new(void);
/* Free e and its strings; NULL is a no-op. */
void ap_env_free(ap_env *e);
/* Set "KEY=VALUE" (copied), replacing KEY's earlier value. */
void ap_env_put(ap_env *e, const char *kv);
/* ap_env_put of each entry of a NULL-terminated list (NULL: none). */
void ap_env_put_all(ap_env *e, const char *const *kvs);

/* ---- process ---- */

/*
 * Start `bin` (no arguments) with environment e, stderr appended to
 * logfile (created when missing), stdout to /dev/null. Returns its pid;
 * the caller reaps it (ap_terminate, ap_kill9).
 */
pid_t ap_spawn(const char *bin, const ap_env *e, const char *logfile);
/* A TCP port free on 127.0.0.1 now (the kernel's pick; free it may not
 * stay, so bind it soon). */
int ap_free_port(void);

/* As ap_spawn, with arguments: argv[0] is the program's path. */
pid_t ap_spawn_argv(char *const *argv, const ap_env *e, const char *logfile);
/*
 * apphost (APPHOST_BIN) with health_events (HE_SO) on k's streams and
 * offset label, HEALTH_EVENTS_BLOCK_MS=1000, then `extra` (NULL or a
 * NULL-terminated "KEY=VALUE" list, overriding those). Returns its pid.
 */
pid_t ap_spawn_he(const th_keys *k, const char *logfile,
		  const char *const *extra);

/* A waitpid() status as an exit code: the code, or 128 + signal. */
int ap_exit_code(int status);
/* SIGTERM, then wait for it: its exit code (ap_exit_code). */
int ap_terminate(pid_t pid);
/*
 * SIGTERM and wait up to wait_ms: the exit code, or -1 when it did not
 * exit in time (it is then SIGKILLed and reaped). *elapsed_ms (may be
 * NULL) is the time waited.
 */
int ap_terminate_within(pid_t pid, int wait_ms, double *elapsed_ms);
/* SIGKILL and reap. */
void ap_kill9(pid_t pid);

/*
 * Two instances on k's streams: spawn(i) starts instance i (its holder
 * name "<tag>-i") and sets pids[i]; logs[i] is its log. Instance 0 leads,
 * 1 stands by, an entry is committed; the leader is SIGKILLed, the other
 * takes over and commits one more; then it stops with SIGTERM, exit 0.
 * Games "<prefix>:g1", ":g2" are inserted and read on `rows` (a
 * connection that may insert them). Asserts at each step; pids[i] is 0
 * for an instance it reaped.
 */
void ap_two_instances_fail_over(const th_keys *k, redisContext *r, PGconn *rows,
				const char *tag, void (*spawn)(int),
				pid_t pids[2], char (*logs)[128]);

/*
 * Run a shell command line; its stdout as a malloc()ed string, and its
 * wait status in *status (0: exited 0).
 */
char *ap_capture(const char *cmdline, int *status);

/* ---- files and the log ---- */

/* A whole file as a malloc()ed string, or NULL when it cannot be read. */
char *ap_read_file(const char *path);
/* Lines of the file containing every one of the NULL-terminated needles
 * (0 when the file is missing). */
size_t ap_log_count(const char *path, const char *needle, ...);
/* The nth (0-based) line containing needle, malloc()ed, or NULL. */
char *ap_log_line(const char *path, const char *needle, size_t nth);
/*
 * Wait up to timeout_ms until needle is on n lines; returns the nth line
 * (malloc()ed). Fails the test on timeout, or at once when pid (> 0)
 * exits meanwhile.
 */
char *ap_wait_log(const char *path, const char *needle, size_t n, pid_t pid,
		  int timeout_ms);

#endif
