/*
 * stream_redis_io.h -- what stream_redis.c lends stream_redis_write.c:
 * the connection and the sorting of replies into the project's codes.
 * Private to those two files; the stream's own thread only.
 */
#ifndef HE_STREAM_REDIS_IO_H
#define HE_STREAM_REDIS_IO_H

#include "stream_redis.h"

#include <stddef.h>

struct redisReply;

/* Lease a connection unless one is held (CLIENT ID read, socket timeout
 * set): 0 or a negative HE_E* with s->err set. */
int he_sr_connect(he_stream_redis *s);
/* Run one argv command: 0 and *out (the caller frees it), or HE_ECONN
 * with the connection given back as broken. */
int he_sr_command(he_stream_redis *s, const char *what, int argc,
		  const char **argv, const size_t *lens,
		  struct redisReply **out);
/* A reply that is not the one asked for: HE_ECONN for a server that is
 * not (or no longer) the primary (given back), HE_EPERM for an ACL
 * refusal, else HE_EREFUSED; s->err says "what: reply". */
int he_sr_refused(he_stream_redis *s, const char *what,
		  const struct redisReply *r);
#endif
