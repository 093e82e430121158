/*
 * redis_scripts.h -- the Lua scripts of the Redis side (stream_redis.c):
 * the fenced batch commit and the take-over, atomic in Redis. Text only,
 * no I/O; their layouts and rules are documented at their definitions.
 */
#ifndef HE_REDIS_SCRIPTS_H
#define HE_REDIS_SCRIPTS_H

/* KEYS: fence, offset, lobby stream, dead letters; ARGV: "<epoch>
 * <token>", the offset the batch follows, the new offset, the snapshots,
 * the dead letters. OK, or FENCED <epoch> / MOVED <saved>. */
extern const char he_commit_script[];

/* KEYS: fence, offset; ARGV: "<epoch> <token>". The saved offset (nil
 * for none), or FENCED <epoch>. */
extern const char he_take_over_script[];

#endif
