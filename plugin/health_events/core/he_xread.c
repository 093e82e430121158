/* he_xread.c -- see he_xread.h. */
#include "he_xread.h"

#include <stdio.h>
#include <stdlib.h>

static int bad_reply(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: unexpected reply shape", what);
	return HE_EPROTO;
}

int he_xread_parse(he_xread_entries *b, const redisReply *rep, size_t *n,
		   char *err, size_t errlen)
{
	*n = 0;
	if (rep->type == REDIS_REPLY_NIL)
		return HE_OK;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 ||
	    rep->element[0]->type != REDIS_REPLY_ARRAY ||
	    rep->element[0]->elements != 2 ||
	    rep->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
		return bad_reply(err, errlen, "XREAD");
	const redisReply *list = rep->element[0]->element[1];
	size_t total = 0;
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *ent = list->element[i];
		if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
		    ent->element[0]->type != REDIS_REPLY_STRING)
			return bad_reply(err, errlen, "XREAD entry");
		if (ent->element[1]->type == REDIS_REPLY_ARRAY)
			total += ent->element[1]->elements;
	}
	size_t items_cap = b->items_cap, lens_cap = b->items_cap;
	if (he_grow((void **)&b->entries, &b->entries_cap, list->elements,
		    sizeof(*b->entries)) < 0 ||
	    he_grow((void **)&b->items, &items_cap, total, sizeof(*b->items)) <
		0 ||
	    he_grow((void **)&b->lens, &lens_cap, total, sizeof(*b->lens)) < 0)
		return HE_ENOMEM;
	b->items_cap = items_cap < lens_cap ? items_cap : lens_cap;
	size_t at = 0;
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *ent = list->element[i];
		const redisReply *f = ent->element[1];
		he_stream_entry *e = &b->entries[i];
		e->id = ent->element[0]->str;
		e->items = b->items + at;
		e->lens = b->lens + at;
		e->nitems = f->type == REDIS_REPLY_ARRAY ? f->elements : 0;
		for (size_t k = 0; k < e->nitems; k++) {
			const redisReply *it = f->element[k];
			bool str = it->type == REDIS_REPLY_STRING;
			b->items[at] = str ? it->str : "";
			b->lens[at] = str ? it->len : 0;
			at++;
		}
	}
	*n = list->elements;
	return HE_OK;
}

void he_xread_free(he_xread_entries *b)
{
	free(b->entries);
	free(b->items);
	free(b->lens);
	*b = (he_xread_entries){0};
}
