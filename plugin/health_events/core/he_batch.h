/*
 * he_batch.h -- how many entries the next XREAD asks for, so that a
 * batch's reply stays within a byte budget (DESIGN §6 leaves COUNT to the
 * configuration; memory must stay bounded whatever the entries weigh).
 *
 * XREAD cannot cap the size of its reply, only the number of entries, so
 * COUNT follows the sizes seen: it starts small (HE_BATCH_START) after
 * start-up, doubles after each full read up to HEALTH_EVENTS_BATCH, and
 * never asks for more entries than half the budget holds at the largest
 * recent size per entry (a high-water mark that decays by a quarter per
 * read). The reader enforces the budget itself (stream_redis.c): a reply
 * that outgrows it after at least one whole entry is abandoned and the
 * controller told how many entries did fit; one entry is always read,
 * whatever it weighs.
 *
 * No I/O; one thread uses a controller.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_BATCH_H
#define HE_BATCH_H

#include <stddef.h>

#define HE_BATCH_START 8u	  /* COUNT of the first read */
#define HE_BATCH_BYTES (8u << 20) /* budget of one reply, accounted bytes */
/* Accounted bytes of a reply item beyond its own: the reply object, its
 * allocation and the pointers the reader keeps to it. */
#define HE_BATCH_ITEM_OVERHEAD 96u

typedef struct he_batch_ctl {
	unsigned max;	  /* HEALTH_EVENTS_BATCH */
	size_t budget;	  /* bytes */
	unsigned count;	  /* COUNT of the next read */
	size_t per_entry; /* decaying high-water mark of bytes per entry */
} he_batch_ctl;

/* Start (or restart: after a reconnection) with COUNT min(8, max). */
void he_batch_init(he_batch_ctl *b, unsigned max, size_t budget);

/* COUNT for the next read: 1..max. */
unsigned he_batch_count(const he_batch_ctl *b);

/* A read asked he_batch_count() and got n entries costing `bytes`. */
void he_batch_observe(he_batch_ctl *b, size_t n, size_t bytes);

/*
 * A read was abandoned: `bytes` were over the budget after `complete`
 * (>= 1) whole entries. The next read asks at most `complete`.
 */
void he_batch_overflow(he_batch_ctl *b, size_t complete, size_t bytes);

#endif /* HE_BATCH_H */
