/*
 * he_outbox.c -- the outbox a batch produces: snapshots and dead letters
 * in stream order, plus the offset to save with them.
 */
#include "he_outbox.h"

#include <stdlib.h>
#include <string.h>

int he_grow(void **arr, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 16;
	while (nc < need)
		nc *= 2;
	void *p = realloc(*arr, nc * sz);
	if (p == NULL)
		return HE_ENOMEM;
	*arr = p;
	*cap = nc;
	return 0;
}

int he_outbox_reserve(he_outbox *box, size_t more_snapshots, size_t more_dead)
{
	int rc =
	    he_grow((void **)&box->snapshots, &box->snapshots_cap,
		    box->nsnapshots + more_snapshots, sizeof(*box->snapshots));
	if (rc == 0)
		rc = he_grow((void **)&box->dead, &box->dead_cap,
			     box->ndead + more_dead, sizeof(*box->dead));
	return rc;
}

int he_outbox_add_snapshot(he_outbox *box, const char *game_id,
			   size_t game_id_len, const char *source_id,
			   char *payload, size_t payload_len)
{
	if (he_outbox_reserve(box, 1, 0) != 0)
		return HE_ENOMEM;
	box->snapshots[box->nsnapshots++] = (he_snapshot_msg){
	    .game_id = game_id,
	    .game_id_len = game_id_len,
	    .source_id = source_id,
	    .payload = payload,
	    .payload_len = payload_len,
	};
	return 0;
}

int he_outbox_add_dead(he_outbox *box, const he_stream_entry *entry,
		       char *reason)
{
	if (he_outbox_reserve(box, 0, 1) != 0)
		return HE_ENOMEM;
	box->dead[box->ndead++] = (he_dead_letter){entry, reason};
	return 0;
}

int he_outbox_set_last_id(he_outbox *box, const char *id)
{
	size_t n = strlen(id);

	if (n >= sizeof(box->last_id))
		return HE_EINVAL;
	memcpy(box->last_id, id, n + 1);
	return 0;
}

/*
 * Free the payloads and reasons and empty the outbox (last_id too); the
 * arrays are kept for the next batch. NULL is a no-op. Thread: the
 * owner's.
 */
void he_outbox_clear(he_outbox *box)
{
	if (box == NULL)
		return;
	for (size_t i = 0; i < box->nsnapshots; i++)
		free(box->snapshots[i].payload);
	for (size_t i = 0; i < box->ndead; i++)
		free((char *)box->dead[i].reason);
	box->nsnapshots = 0;
	box->ndead = 0;
	box->last_id[0] = '\0';
}

/*
 * Free everything the outbox owns, arrays included, and zero it. The
 * struct itself belongs to the caller (there is no he_outbox_new):
 * it is not freed. NULL is a no-op. Thread: the owner's.
 */
void he_outbox_free(he_outbox *box)
{
	if (box == NULL)
		return;
	he_outbox_clear(box);
	free(box->snapshots);
	free(box->dead);
	memset(box, 0, sizeof(*box));
}
