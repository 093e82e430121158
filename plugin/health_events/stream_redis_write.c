/*
 * stream_redis_write.c -- the leader's fenced writes over hiredis: the
 * take-over (raise the fence, read the saved offset) and the batch commit,
 * one Lua script (EVALSHA) that checks the leader's epoch against the
 * fence key and the saved offset against the one the batch follows, then
 * XADDs the batch and SETs the offset last (redis_scripts.h). The
 * connection and the replies' errors are stream_redis.c's.
 */
#include "stream_redis.h"

#include "redis_scripts.h"
#include "stream_redis_io.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fencing and commit ----------------------------------------------- */

/* ARGV[1] of the scripts: "<epoch> <token>", or "<epoch>" without one. */
static void fence_arg(he_stream_redis *s)
{
	snprintf(s->fence_arg, sizeof(s->fence_arg), "%s%s%s", s->epoch,
		 s->token[0] ? " " : "", s->token);
}

void he_stream_redis_set_epoch(he_stream_redis *s, uint64_t epoch)
{
	snprintf(s->epoch, sizeof(s->epoch), "%llu", (unsigned long long)epoch);
	fence_arg(s);
}

void he_stream_redis_set_token(he_stream_redis *s, const char *token)
{
	snprintf(s->token, sizeof(s->token), "%s", token ? token : "");
	fence_arg(s);
}

/* A script's refusal: HE_EFENCED (s->fence_seen set), HE_EMOVED, else 0. */
static int script_refusal(he_stream_redis *s, const redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ERROR)
		return HE_OK;
	if (strncmp(rep->str, "FENCED ", 7) == 0) {
		s->fence_seen = strtoull(rep->str + 7, NULL, 10);
		snprintf(s->err, sizeof(s->err),
			 "epoch %s refused: fence is at %llu", s->epoch,
			 s->fence_seen);
		return HE_EFENCED;
	}
	if (strncmp(rep->str, "MOVED", 5) == 0) {
		const char *saved = rep->str[5] ? rep->str + 6 : "";
		/* Our own commit whose reply was lost: it landed. */
		if (s->committing && strcmp(saved, s->committing) == 0)
			return HE_OK;
		snprintf(s->err, sizeof(s->err),
			 "saved offset is \"%.64s\", not \"%.64s\"", saved,
			 s->saved);
		return HE_EMOVED;
	}
	return HE_OK;
}

/* The take-over script's reply: the saved offset (0 and out), HE_ENOENT
 * for none, or an error when it is not a stream id. */
static int saved_offset(he_stream_redis *s, const char *what,
			const redisReply *rep, char *out, size_t cap)
{
	he_stream_id id;
	if (rep->type == REDIS_REPLY_NIL)
		return HE_ENOENT;
	if (rep->type != REDIS_REPLY_STRING)
		return he_sr_refused(s, what, rep);
	if (rep->len >= cap || he_stream_id_parse(rep->str, &id) < 0) {
		snprintf(s->err, sizeof(s->err),
			 "%s: saved offset %.128s holds \"%.64s\", not a "
			 "stream id",
			 what, s->cfg->offset_key, rep->str);
		return HE_EPROTO;
	}
	memcpy(out, rep->str, rep->len + 1);
	return HE_OK;
}

int he_stream_redis_take_over(he_stream_redis *s, char *out, size_t cap)
{
	if (!s->epoch[0]) {
		snprintf(s->err, sizeof(s->err), "take-over: no epoch set");
		return HE_EFENCED;
	}
	int r = he_sr_connect(s);
	if (r < 0)
		return r;
	s->reconnected = false;
	s->committing = NULL;
	const char *argv[] = {"EVAL",
			      he_take_over_script,
			      "2",
			      s->cfg->fence_key,
			      s->cfg->offset_key,
			      s->fence_arg};
	redisReply *rep;
	if ((r = he_sr_command(s, "EVAL take-over", 6, argv, NULL, &rep)) < 0)
		return r;
	if ((r = script_refusal(s, rep)) == HE_OK)
		r = saved_offset(s, "EVAL take-over", rep, out,
				 cap < sizeof(s->saved) ? cap
							: sizeof(s->saved));
	if (r == HE_OK || r == HE_ENOENT)
		snprintf(s->saved, sizeof(s->saved), "%s", r ? "" : out);
	freeReplyObject(rep);
	return r;
}

static int argv_reserve(he_stream_redis *s, size_t n)
{
	size_t a = s->argv_cap, b = s->argv_cap;
	if (he_grow((void **)&s->argv, &a, n, sizeof(*s->argv)) < 0 ||
	    he_grow((void **)&s->argvlen, &b, n, sizeof(*s->argvlen)) < 0)
		return HE_ENOMEM;
	s->argv_cap = a < b ? a : b;
	return HE_OK;
}

/* One EVALSHA argv of the whole commit (he_commit_script's layout). */
static int build_commit(he_stream_redis *s, const he_outbox *box, int *argc)
{
	he_dead_fields_reset(&s->dead);
	for (size_t i = 0; i < box->ndead; i++)
		if (he_dead_fields_add(&s->dead, box->dead[i].entry,
				       box->dead[i].reason) < 0)
			return HE_ENOMEM;
	/* 11 fixed arguments, 3 per snapshot, a count and the items per
	 * dead letter. */
	size_t need = 11 + 3 * box->nsnapshots + box->ndead + s->dead.n;
	if (argv_reserve(s, need) < 0)
		return HE_ENOMEM;
	size_t n = 0;
#define ARG(str, len)                                                          \
	do {                                                                   \
		s->argv[n] = (str);                                            \
		s->argvlen[n] = (len);                                         \
		n++;                                                           \
	} while (0)
#define ARGZ(str) ARG((str), strlen(str))
	ARGZ("EVALSHA");
	ARGZ(s->sha);
	ARGZ("4");
	ARGZ(s->cfg->fence_key);
	ARGZ(s->cfg->offset_key);
	ARGZ(s->cfg->lobby_stream);
	ARGZ(s->cfg->dead_stream);
	ARGZ(s->fence_arg);
	ARGZ(s->saved);
	ARGZ(box->last_id);
	snprintf(s->nsnap, sizeof(s->nsnap), "%zu", box->nsnapshots);
	ARGZ(s->nsnap);
	for (size_t i = 0; i < box->nsnapshots; i++) {
		const he_snapshot_msg *m = &box->snapshots[i];
		ARG(m->game_id, m->game_id_len);
		ARGZ(m->source_id);
		ARG(m->payload, m->payload_len);
	}
	/* A dead letter: its count of items, then its fields and ours
	 * (he_deadletter.h: reserved names escaped, oversized cut down). */
	if (he_grow((void **)&s->counts, &s->counts_cap, box->ndead,
		    sizeof(*s->counts)) < 0)
		return HE_ENOMEM;
	for (size_t i = 0; i < box->ndead; i++) {
		const he_dead_item *it;
		size_t items;
		he_dead_fields_letter(&s->dead, i, &it, &items);
		snprintf(s->counts[i].s, sizeof(s->counts[i].s), "%zu", items);
		ARGZ(s->counts[i].s);
		for (size_t k = 0; k < items; k++)
			ARG(it[k].p, it[k].len);
	}
#undef ARG
#undef ARGZ
	*argc = (int)n;
	return HE_OK;
}

/* SCRIPT LOAD the commit script into s->sha (once per server). */
static int load_script(he_stream_redis *s)
{
	const char *argv[] = {"SCRIPT", "LOAD", he_commit_script};
	redisReply *rep;
	int r = he_sr_command(s, "SCRIPT LOAD", 3, argv, NULL, &rep);
	if (r < 0)
		return r;
	if (rep->type == REDIS_REPLY_STRING && rep->len < sizeof(s->sha))
		memcpy(s->sha, rep->str, rep->len + 1);
	else
		r = he_sr_refused(s, "SCRIPT LOAD", rep);
	freeReplyObject(rep);
	return r;
}

static int commit(void *ctx, const he_outbox *box)
{
	he_stream_redis *s = ctx;
	if (!s->epoch[0]) {
		snprintf(s->err, sizeof(s->err), "commit: no epoch set");
		return HE_EFENCED;
	}
	int r = he_sr_connect(s), argc;
	if (r < 0)
		return r;
	if (!s->sha[0] && (r = load_script(s)) < 0)
		return r;
	if ((r = build_commit(s, box, &argc)) < 0) {
		snprintf(s->err, sizeof(s->err), "commit: out of memory");
		return r;
	}
	redisReply *rep;
	s->committing = box->last_id;
	for (int attempt = 0;; attempt++) {
		if ((r = he_sr_command(s, "EVALSHA commit", argc, s->argv,
				       s->argvlen, &rep)) < 0)
			return r;
		/* A restarted or failed-over server has no scripts. */
		if (attempt || rep->type != REDIS_REPLY_ERROR ||
		    strncmp(rep->str, "NOSCRIPT", 8) != 0)
			break;
		freeReplyObject(rep);
		if ((r = load_script(s)) < 0)
			return r;
	}
	if ((r = script_refusal(s, rep)) == HE_OK &&
	    rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "MOVED", 5))
		r = he_sr_refused(s, "commit", rep);
	freeReplyObject(rep);
	he_stream_id saved, last;
	if (r == HE_OK && (he_stream_id_parse(s->saved, &saved) != 0 ||
			   (he_stream_id_parse(box->last_id, &last) == 0 &&
			    he_stream_id_cmp(last, saved) > 0)))
		snprintf(s->saved, sizeof(s->saved), "%s", box->last_id);
	return r;
}

he_stream_port he_stream_redis_port(he_stream_redis *s)
{
	return (he_stream_port){.ctx = s, .commit = commit};
}
