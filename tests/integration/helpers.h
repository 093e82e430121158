/* helpers.h -- small Redis/PostgreSQL helpers for the server-backed suites. */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* XADD stream * f1 v1 ... (NULL-terminated pairs); returns a malloc()ed id. */
char *th_xadd(redisContext *c, const char *stream, ...);
/* GET key as a malloc()ed string, or NULL. */
char *th_get(redisContext *c, const char *key);
/* XRANGE stream - +: the whole reply (caller frees). */
redisReply *th_xrange(redisContext *c, const char *stream);
/* Value of `field` in an XRANGE entry's field list, or NULL. */
const char *th_field(const redisReply *entry, const char *field);
/* Run a command with argv from NULL-terminated strings; returns reply. */
redisReply *th_cmd(redisContext *c, ...);

/* Execute SQL with text params (NULL-terminated); aborts on error. */
void th_sql(PGconn *c, const char *sql, ...);
/* One-row query: value of column col as malloc()ed string, or NULL. */
char *th_sql_value(PGconn *c, const char *sql, const char *param);
/* Insert a runtime_records row. */
void th_insert_game(PGconn *c, const char *game_id, const char *status,
		    int current_turn);

/* Poll until GET key equals want, up to timeout_ms; true when it does. */
bool th_wait_offset(redisContext *c, const char *key, const char *want,
		    int timeout_ms);
/* Milliseconds on the monotonic clock. */
double th_now_ms(void);
/* A unique prefix for keys/rows of one test: "<tag>:<pid>:<n>". */
const char *th_unique(const char *tag);

#endif
