/*
 * redis_needs.h -- every Redis command health_events (and the host's pool
 * on its behalf) runs, with the key it runs on: the one list the
 * permission check (preflight.c) asks Redis about and the documented ACL
 * user is written from.
 *
 * Pure data and string code: no I/O, any thread.
 */
#ifndef HE_REDIS_NEEDS_H
#define HE_REDIS_NEEDS_H

#include "he_config.h"

#include <stdbool.h>
#include <stddef.h>

/* Which configured key a command runs on. */
enum he_need_key {
	HE_NEED_NOKEY = 0,
	HE_NEED_STREAM, /* HEALTH_EVENTS_STREAM */
	HE_NEED_LOBBY,	/* HEALTH_EVENTS_LOBBY_STREAM */
	HE_NEED_DEAD,	/* HEALTH_EVENTS_DEAD_LETTER_STREAM */
	HE_NEED_OFFSET, /* the offset key */
	HE_NEED_FENCE,	/* the offset key's :fence */
};

#define HE_NEED_ARGS 8

typedef struct he_redis_need {
	const char *acl;		/* its ACL name: "xread", "client|id" */
	const char *argv[HE_NEED_ARGS]; /* a whole invocation, NULL-ended;
					   "$KEY" stands for the key */
	int key;			/* enum he_need_key */
	bool required;	    /* false: it degrades without (see lost) */
	bool sentinel_only; /* run only with APPHOST_REDIS_SENTINELS */
	const char *lost;   /* optional ones: what is lost without it */
} he_redis_need;

extern const he_redis_need he_redis_needs[];
extern const size_t he_redis_nneeds;

/* The configured name of key k (enum he_need_key), "" for none. */
const char *he_need_key_name(const he_config *cfg, int k);

/*
 * The ACL SETUSER line for `user` that allows exactly what the list
 * needs on cfg's keys (glob characters escaped, a space, which no ACL
 * rule can hold, as '?'; each argument quoted as redis-cli reads it when
 * it must be), with the password as the
 * placeholder ">PASSWORD"; `sentinel` adds ROLE. malloc()ed, or NULL when
 * out of memory.
 */
char *he_redis_acl_line(const he_config *cfg, const char *user, bool sentinel);

#endif
