/*
 * he_split.h -- finding the entries the store refuses (a data error, not
 * an outage) by splitting the batch, so the rest still applies, in order.
 *
 * The ops of a batch are applied front to back in ranges: first all that
 * are left; a refused range is halved and its front half tried; an
 * applied front half moves the front on and the bisection goes on in
 * the rest of the refused range; a refused range of one op is the
 * refused entry, which the caller dead-letters before going on with
 * everything after it. Every op is applied once, in stream order, and a
 * refused op costs about 2 log2(n) extra applies.
 *
 * No I/O; the caller runs the applies. One thread uses a splitter.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_SPLIT_H
#define HE_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct he_split {
	size_t lo; /* ops[0..lo) are settled (applied or refused) */
	size_t hi; /* the range in hand is ops[lo..hi) */
	size_t n;
	size_t fail_hi; /* > lo: ops[lo..fail_hi) holds a refused op */
} he_split;

typedef enum he_split_step {
	HE_SPLIT_NEXT = 1, /* apply the range he_split_range() gives */
	HE_SPLIT_REFUSED,  /* ops[*refused] alone was refused: dead-letter it */
	HE_SPLIT_DONE,	   /* every op is settled */
} he_split_step;

/* Start on n ops (n == 0: done at once). */
void he_split_init(he_split *s, size_t n);

/* The range to apply now: ops[*off .. *off + *len); *len >= 1. */
void he_split_range(const he_split *s, size_t *off, size_t *len);

/*
 * The range was applied (refused == false) or refused by a data error.
 * Returns what comes next; with HE_SPLIT_REFUSED, *refused is the index
 * of the op that stands refused alone (the splitter has moved past it).
 * After HE_SPLIT_REFUSED, call he_split_more() to know whether ops are
 * left.
 */
he_split_step he_split_result(he_split *s, bool refused, size_t *which);

/* true while ops are left to apply. */
bool he_split_more(const he_split *s);

#endif /* HE_SPLIT_H */
