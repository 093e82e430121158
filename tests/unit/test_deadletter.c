/*
 * test_deadletter.c -- a dead letter's fields: the consumer's names are
 * never spoofed, an oversized entry is cut to its head and sizes.
 */
#include "he_deadletter.h"
#include "he_decoder.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static he_dead_fields f;

static void teardown(void)
{
	he_dead_fields_free(&f);
}

TestSuite(deadletter, .fini = teardown);

static bool item_is(size_t i, const char *s)
{
	return f.items[i].len == strlen(s) &&
	       memcmp(f.items[i].p, s, f.items[i].len) == 0;
}

/* Value of the only field named `name`; fails on none or several. */
static const he_dead_item *only(const char *name)
{
	const he_dead_item *v = NULL;
	for (size_t i = 0; i + 1 < f.n; i += 2)
		if (item_is(i, name)) {
			cr_assert_null(v, "two fields named %s", name);
			v = &f.items[i + 1];
		}
	cr_assert_not_null(v, "no field named %s", name);
	return v;
}

static void expect_value(const char *name, const char *want)
{
	const he_dead_item *v = only(name);
	cr_assert_eq(v->len, strlen(want), "%s", name);
	cr_assert(memcmp(v->p, want, v->len) == 0, "%s", name);
}

static he_stream_entry entry(const char *id, size_t n, const char **items,
			     size_t *lens)
{
	for (size_t i = 0; i < n; i++)
		if (lens[i] == 0)
			lens[i] = strlen(items[i]);
	return (he_stream_entry){id, n, items, lens};
}

Test(deadletter, the_entrys_own_reason_and_source_id_are_renamed)
{
	const char *it[] = {
	    "game_id", "g1",	      "reason", "spoofed",    "source_id",
	    "9-9",     "orig_reason", "older",	"event_type", "container_oom"};
	size_t ln[10] = {0};
	he_stream_entry e = entry("5-1", 10, it, ln);

	cr_assert_eq(he_dead_fields_build(&f, &e, "missing thing"), 0);
	cr_assert_eq(f.n % 2, 0);
	expect_value("reason", "missing thing");
	expect_value("source_id", "5-1");
	expect_value("orig_reason", "spoofed");
	expect_value("orig_source_id", "9-9");
	expect_value("orig_orig_reason", "older");
	expect_value("game_id", "g1");
	expect_value("event_type", "container_oom");
	cr_assert_eq(f.n, 14, "5 fields of the entry, 2 of ours");
	/* the entry's fields first, in order, then ours */
	cr_assert(item_is(0, "game_id") && item_is(2, "orig_reason"));
	cr_assert(item_is(10, "source_id") && item_is(12, "reason"));
}

Test(deadletter, an_odd_trailing_name_gets_an_empty_value)
{
	const char *it[] = {"game_id", "g1", "source_id"};
	size_t ln[3] = {0};
	he_stream_entry e = entry("5-2", 3, it, ln);

	cr_assert_eq(he_dead_fields_build(&f, &e, "odd number"), 0);
	expect_value("orig_source_id", "");
	expect_value("source_id", "5-2");
	cr_assert_eq(f.n, 8);
}

/* A 1 MiB value: the head (1 KiB) and the sizes, never the whole. */
Test(deadletter, an_oversized_entry_is_cut_to_its_head)
{
	size_t mib = 1 << 20;
	char *big = malloc(mib);
	memset(big, 'v', mib);
	const char *it[] = {"game_id", "g1",	     "details",
			    big,       "event_type", "probe_failed"};
	size_t ln[6] = {0, 0, 0, mib, 0, 0};
	he_stream_entry e = entry("5-3", 6, it, ln);
	cr_assert(he_entry_oversized(&e, NULL));

	cr_assert_eq(he_dead_fields_build(&f, &e, "field details longer"), 0);
	expect_value("game_id", "g1");
	const he_dead_item *d = only("details");
	cr_assert_eq(d->len, HE_DEAD_HEAD_MAX - 2 - 2 - 7 - 5,
		     "the value cut where the first KiB ends");
	cr_assert_eq(d->p, big, "borrowed, not copied");
	expect_value("entry_fields", "3");
	char want[32];
	snprintf(want, sizeof(want), "%zu", mib + 2 + 2 + 7 + 5 + 10 + 12);
	expect_value("entry_bytes", want);
	expect_value("source_id", "5-3");
	for (size_t i = 0; i + 1 < f.n; i += 2)
		cr_assert_not(item_is(i, "event_type"), "past the head");
	size_t total = 0;
	for (size_t i = 0; i < f.n; i++)
		total += f.items[i].len;
	cr_assert_lt(total, 2 * HE_DEAD_HEAD_MAX);
	free(big);
}

/* 5,000 small fields: over the field cap, cut the same way. */
Test(deadletter, too_many_fields_are_cut_to_the_head)
{
	enum { N = 10000 };
	const char **it = malloc(N * sizeof(*it));
	size_t *ln = malloc(N * sizeof(*ln));
	for (size_t i = 0; i < N; i++) {
		it[i] = i % 2 ? "value" : "name";
		ln[i] = 0;
	}
	he_stream_entry e = entry("5-4", N, it, ln);
	char reason[HE_REASON_MAX];
	he_decoded dec;
	cr_assert_eq(he_decode(&e, &dec, reason), HE_EINVAL);
	cr_assert_str_eq(reason, "entry has 5000 fields, more than 256");

	cr_assert_eq(he_dead_fields_build(&f, &e, reason), 0);
	cr_assert_lt(f.n, 2 * HE_DEAD_HEAD_MAX / 9 + 10);
	expect_value("entry_fields", "5000");
	expect_value("entry_bytes", "45000");
	free(it);
	free(ln);
}

/* A name cut by the head into a reserved one is escaped too. */
Test(deadletter, a_cut_name_that_reads_reserved_is_escaped)
{
	size_t fill = HE_DEAD_HEAD_MAX - 1 - 6, nl = 200000;
	char *v = malloc(fill), *name = malloc(nl);
	memset(v, 'x', fill);
	memset(name, 'z', nl);
	memcpy(name, "reason", 6);
	const char *it[] = {"a", v, name, "value"};
	size_t ln[4] = {1, fill, nl, 5};
	he_stream_entry e = {"5-5", 4, it, ln};

	cr_assert_eq(he_dead_fields_build(&f, &e, "r"), 0);
	expect_value("reason", "r");
	expect_value("orig_reason", "");
	free(v);
	free(name);
}

/*
 * Random entries whose names come from a set full of reserved ones:
 * ours stay unique, and one `orig_` off every escaped name gives the
 * entry's names back, in order.
 */
Test(deadletter, escaping_is_reversible_and_ours_stay_unique)
{
	static const char *names[] = {"reason",	     "source_id",   "orig_",
				      "orig_reason", "entry_bytes", "game_id",
				      "origin",	     "entry_fields"};
	uint32_t seed = 7;
	for (int round = 0; round < 2000; round++) {
		const char *it[16];
		size_t ln[16];
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 8) % 17;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			it[i] = names[(seed >> 8) % 8];
			ln[i] = strlen(it[i]);
		}
		he_stream_entry e = {"1-1", n, it, ln};
		cr_assert_eq(he_dead_fields_build(&f, &e, "why"), 0);
		expect_value("reason", "why");
		expect_value("source_id", "1-1");
		for (size_t i = 0; i < n; i += 2) {
			const he_dead_item *nm = &f.items[i];
			const char *orig = nm->p;
			size_t ol = nm->len;
			if (ol >= 5 && memcmp(orig, "orig_", 5) == 0) {
				orig += 5;
				ol -= 5;
			}
			cr_assert(ol == ln[i] && memcmp(orig, it[i], ol) == 0,
				  "round %d item %zu", round, i);
		}
	}
}

/* Fields each within 64 KiB that add up past 128 KiB: oversized too. */
Test(deadletter, many_medium_fields_make_an_oversized_entry)
{
	size_t v = 60 << 10;
	char *big = malloc(v);
	memset(big, 'm', v);
	const char *it[] = {"game_id", "g1", "event_type", "probe_failed",
			    "a",       big,  "b",	   big,
			    "c",       big};
	size_t ln[10] = {7, 2, 10, 12, 1, v, 1, v, 1, v};
	he_stream_entry e = {"5-6", 10, it, ln};
	char reason[HE_REASON_MAX], want[64];
	he_decoded dec;

	cr_assert_eq(he_decode(&e, &dec, reason), HE_EINVAL);
	snprintf(want, sizeof(want), "entry is %zu bytes, more than 131072",
		 7 + 2 + 10 + 12 + 3 + 3 * v);
	cr_assert_str_eq(reason, want);
	cr_assert_eq(he_dead_fields_build(&f, &e, reason), 0);
	expect_value("entry_fields", "5");
	expect_value("game_id", "g1");
	/* one field fewer: decodes */
	e.nitems = 8;
	cr_assert_eq(he_decode(&e, &dec, reason), 0);
	free(big);
}

/* 20,000 empty items: the head is cut by items, not only by bytes. */
Test(deadletter, empty_fields_are_cut_by_count)
{
	enum { N = 20000 };
	const char **it = malloc(N * sizeof(*it));
	size_t *ln = calloc(N, sizeof(*ln));
	for (size_t i = 0; i < N; i++)
		it[i] = "";
	he_stream_entry e = {"5-7", N, it, ln};

	cr_assert_eq(he_dead_fields_build(&f, &e, "too many"), 0);
	cr_assert_leq(f.n, HE_DEAD_HEAD_ITEMS + 8);
	expect_value("entry_fields", "10000");
	expect_value("entry_bytes", "0");
	free(it);
	free(ln);
}

/* Several letters in one builder: each keeps its own escaped names. */
Test(deadletter, letters_of_one_commit_stay_apart)
{
	const char *a[] = {"reason", "first", "orig_x", "1"};
	const char *b[] = {"source_id", "second"};
	size_t la[4] = {0}, lb[2] = {0};
	he_stream_entry ea = entry("1-1", 4, a, la);
	he_stream_entry eb = entry("1-2", 2, b, lb);

	he_dead_fields_reset(&f);
	cr_assert_eq(he_dead_fields_add(&f, &ea, "ra"), 0);
	cr_assert_eq(he_dead_fields_add(&f, &eb, "rb"), 0);
	cr_assert_eq(f.nletters, 2);
	const he_dead_item *it;
	size_t n;
	he_dead_fields_letter(&f, 0, &it, &n);
	cr_assert_eq(n, 8);
	cr_assert(it[0].len == 11 && memcmp(it[0].p, "orig_reason", 11) == 0);
	cr_assert(it[2].len == 11 && memcmp(it[2].p, "orig_orig_x", 11) == 0);
	cr_assert(it[7].len == 2 && memcmp(it[7].p, "ra", 2) == 0);
	he_dead_fields_letter(&f, 1, &it, &n);
	cr_assert_eq(n, 6);
	cr_assert(it[0].len == 14 &&
		  memcmp(it[0].p, "orig_source_id", 14) == 0);
	cr_assert(it[3].len == 3 && memcmp(it[3].p, "1-2", 3) == 0);
}
