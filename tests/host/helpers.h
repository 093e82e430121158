/* helpers.h -- shared by the host suite's test files. */
#ifndef TEST_HOST_HELPERS_H
#define TEST_HOST_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "services.h"

/*
 * What a ParameterizedTestParameters returns: every case of a static
 * table (of arrays, not pointers: each case runs in a fresh process).
 */
#define TABLE_PARAMS(type, table)                                              \
	cr_make_param_array(type, table, sizeof(table) / sizeof((table)[0]))

/* Path of a built test component ("good" -> .../components/good.so).
 * Returns a static buffer per call slot (4 rotating). */
const char *comp_path(const char *name);

/* A temporary directory (0700) unique to this test; freed at exit. */
const char *tmp_dir(void);

/* Copy src to dst with `mode`. Returns 0 or -errno. */
int copy_file(const char *src, const char *dst, mode_t mode);

/* Read a whole file into a malloc()ed string (NULL if absent). */
char *read_text(const char *path);

/* Log capture: send apphost log lines to a temp file from now on. */
void log_capture_start(void);
/* Everything logged since log_capture_start (malloc()ed). */
char *log_captured(void);

/* A host context from the current environment; pools never connect
 * unless leased. test_ctx_free(NULL) is a no-op. */
struct apphost_ctx *test_ctx_new(void);
void test_ctx_free(struct apphost_ctx *ctx);

/*
 * Start argv[0] (a path) with extra environment entries over this
 * process's ("K=V", NULL-terminated, may be NULL), by posix_spawn with an
 * environment built beforehand. Its stderr (and stdout when to_stdout)
 * goes to a pipe whose read end is *rfd. Returns the pid; the caller
 * reaps it and closes *rfd. Asserts on failure.
 */
pid_t spawn_cmd(char *const argv[], char *const extra_env[], bool to_stdout,
		int *rfd);

/* Run argv with extra environment entries ("K=V", NULL-terminated, may
 * be NULL). Captures stdout+stderr into *out (malloc()ed). Returns the
 * exit status, 128+N when killed by signal N, or -1. */
int run_cmd(char *const argv[], char *const extra_env[], char **out);

/* Require a server URL from the environment: returns it, or skips the
 * test (fails when CI is set). */
const char *need_env(const char *key);

/*
 * A thread that exchanges the names a and b (renameat2 RENAME_EXCHANGE)
 * over and over, to race a check of a name against its use. With
 * redo_dir, a is made a directory again before each exchange (the code
 * under test may remove it) and each exchange is undone at once.
 */
struct swapper {
	char a[700], b[700];
	bool redo_dir;
	atomic_bool stop;
	atomic_int swaps;
	pthread_t thread;
};

/* Start s's thread (set a, b and redo_dir first). Asserts on failure. */
void swapper_start(struct swapper *s);
/* Stop and join s's thread; returns how many exchanges succeeded. */
int swapper_stop(struct swapper *s);

#endif
