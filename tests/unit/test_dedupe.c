/*
 * test_dedupe.c -- the D4 cache: consistency against a naive model,
 * export/import round trip and rejection of bad buffers.
 */
#include "core.h"
#include "he_decoder.h"
#include "he_dedupe.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static he_dedupe *d;

static void setup(void)
{
	cr_assert_eq(he_dedupe_new(&d), 0);
}

static void teardown(void)
{
	he_dedupe_free(d);
}

TestSuite(dedupe, .init = setup, .fini = teardown);

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Random set/remove against an array model: checks probing and the
 * backward-shift deletion. */
Test(dedupe, matches_a_naive_model)
{
	enum { KEYS = 700, OPS = 40000 };
	static const char *sums[] = {"healthy", "oom", "probe_failed",
				     "custom one", "another \"custom\""};
	int model[KEYS]; /* -1 absent, else index into sums */
	char key[32];

	for (size_t i = 0; i < KEYS; i++)
		model[i] = -1;
	for (size_t op = 0; op < OPS; op++) {
		uint32_t k = rng() % KEYS, what = rng() % 10;
		int len = snprintf(key, sizeof(key), "game-%u", k);
		if (what < 6) {
			int s = (int)(rng() % 5);
			cr_assert_eq(
			    he_dedupe_set(d, key, (size_t)len, sums[s]), 0);
			model[k] = s;
		} else {
			he_dedupe_remove(d, key, (size_t)len);
			model[k] = -1;
		}
	}
	size_t count = 0;
	for (uint32_t k = 0; k < KEYS; k++) {
		char out[128];
		int len = snprintf(key, sizeof(key), "game-%u", k);
		bool got = he_dedupe_get(d, key, (size_t)len, out, sizeof(out));
		cr_assert_eq(got, model[k] >= 0, "key %u", k);
		if (got) {
			cr_assert_str_eq(out, sums[model[k]]);
			cr_assert(he_dedupe_same(d, key, (size_t)len,
						 sums[model[k]]));
			count++;
		}
	}
	cr_assert_eq(he_dedupe_size(d), count);
	he_dedupe_clear(d);
	cr_assert_eq(he_dedupe_size(d), 0);
	cr_assert_not(he_dedupe_same(d, "game-1", 6, "healthy"));
}

Test(dedupe, limits)
{
	char big[300];

	memset(big, 'h', sizeof(big));
	cr_assert_eq(he_dedupe_set(d, "", 0, "oom"), HE_EINVAL);
	cr_assert_eq(he_dedupe_set(d, big, 257, "oom"), HE_EINVAL);
	cr_assert_eq(he_dedupe_set(d, big, 256, "oom"), 0);
	he_dedupe_remove(d, big, 256);
	big[HE_HEALTH_MAX - 1] = '\0';
	cr_assert_eq(he_dedupe_set(d, "g", 1, big), 0);
	big[HE_HEALTH_MAX - 1] = 'h';
	big[HE_HEALTH_MAX] = '\0';
	cr_assert_eq(he_dedupe_set(d, "g", 1, big), HE_EINVAL);
	cr_assert_eq(he_dedupe_size(d), 1);
	/* binary-safe keys: "a\0b" and "a" are different games */
	cr_assert_eq(he_dedupe_set(d, "a\0b", 3, "oom"), 0);
	cr_assert_not(he_dedupe_same(d, "a", 1, "oom"));
	cr_assert(he_dedupe_same(d, "a\0b", 3, "oom"));
}

static void fill(he_dedupe *t, size_t n)
{
	char key[64], sum[64];
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(key, sizeof(key), "g-\xc3\xa9-%zu", i);
		if (i % 3 == 0)
			snprintf(sum, sizeof(sum), "custom %zu", i);
		else
			snprintf(sum, sizeof(sum), "%s",
				 i % 3 == 1 ? "oom" : "healthy");
		cr_assert_eq(he_dedupe_set(t, key, (size_t)len, sum), 0);
	}
}

Test(dedupe, export_import_round_trip)
{
	he_dedupe *t;
	void *buf;
	size_t len;

	fill(d, 1000);
	cr_assert_eq(he_dedupe_export(d, &buf, &len), 0);
	cr_assert_eq(he_dedupe_new(&t), 0);
	cr_assert_eq(he_dedupe_import(t, buf, len), 0);
	cr_assert_eq(he_dedupe_size(t), 1000);
	for (size_t i = 0; i < 1000; i++) {
		char key[64], a[128], b[128];
		int kl = snprintf(key, sizeof(key), "g-\xc3\xa9-%zu", i);
		cr_assert(he_dedupe_get(d, key, (size_t)kl, a, sizeof(a)));
		cr_assert(he_dedupe_get(t, key, (size_t)kl, b, sizeof(b)));
		cr_assert_str_eq(a, b);
	}
	/* export of the import gives the same size of buffer */
	void *buf2;
	size_t len2;
	cr_assert_eq(he_dedupe_export(t, &buf2, &len2), 0);
	cr_assert_eq(len2, len);
	free(buf2);
	free(buf);
	he_dedupe_free(t);
}

Test(dedupe, import_merges_and_the_running_cache_wins)
{
	he_dedupe *src;
	void *buf;
	size_t len;
	char out[64];

	cr_assert_eq(he_dedupe_new(&src), 0);
	he_dedupe_set(src, "g1", 2, "oom");
	he_dedupe_set(src, "g2", 2, "exited");
	cr_assert_eq(he_dedupe_export(src, &buf, &len), 0);
	he_dedupe_set(d, "g1", 2, "healthy");
	cr_assert_eq(he_dedupe_import(d, buf, len), 0);
	cr_assert_eq(he_dedupe_size(d), 2);
	cr_assert(he_dedupe_get(d, "g1", 2, out, sizeof(out)));
	cr_assert_str_eq(out, "healthy");
	cr_assert(he_dedupe_get(d, "g2", 2, out, sizeof(out)));
	cr_assert_str_eq(out, "exited");
	free(buf);
	he_dedupe_free(src);
}

static void expect_refused(const unsigned char *buf, size_t len,
			   const char *what)
{
	char out[64];

	cr_assert_eq(he_dedupe_import(d, buf, len), HE_EINVAL, "%s", what);
	cr_assert_eq(he_dedupe_size(d), 1, "%s: cache changed", what);
	cr_assert(he_dedupe_get(d, "keep", 4, out, sizeof(out)));
	cr_assert_str_eq(out, "oom");
}

Test(dedupe, import_refuses_truncated_and_garbage)
{
	he_dedupe *src;
	unsigned char *buf;
	size_t len;

	cr_assert_eq(he_dedupe_new(&src), 0);
	fill(src, 20);
	cr_assert_eq(he_dedupe_export(src, (void **)&buf, &len), 0);
	he_dedupe_free(src);
	he_dedupe_set(d, "keep", 4, "oom");

	for (size_t n = 0; n < len; n++)
		expect_refused(buf, n, "truncated");
	expect_refused(NULL, 0, "NULL");

	unsigned char *m = malloc(len + 1);
#define MUTATE(stmt, what)                                                     \
	do {                                                                   \
		memcpy(m, buf, len);                                           \
		size_t ml = len;                                               \
		stmt;                                                          \
		expect_refused(m, ml, what);                                   \
	} while (0)
	MUTATE(m[0] = 'X', "magic");
	MUTATE(m[4] = 2, "version");
	MUTATE(m[6] = 1, "reserved");
	MUTATE(m[8] = 21, "count too high");
	MUTATE(m[8] = 19, "count too low (trailing bytes)");
	MUTATE((m[len] = 0, ml = len + 1), "trailing byte");
	MUTATE((m[12] = 0, m[13] = 0), "zero key length");
	MUTATE((m[12] = 0xff, m[13] = 0xff), "key length past the end");
	MUTATE(m[14] = 0xff, "key not UTF-8");
	MUTATE(m[14] = 0, "NUL in key");
#undef MUTATE
	free(m);

	/* hand-made: duplicate game, NUL in summary, summary too long */
	static const unsigned char dup[] = {
	    'H', 'E', 'D', 'D', 1,   0,	  0, 0, 2,   0, 0, 0,	1,   0,
	    'g', 3,   0,   'o', 'o', 'm', 1, 0, 'g', 3, 0, 'o', 'o', 'm'};
	expect_refused(dup, sizeof(dup), "duplicate game");
	static const unsigned char nul[] = {'H', 'E', 'D', 'D', 1, 0,  0,
					    0,	 1,   0,   0,	0, 1,  0,
					    'g', 3,   0,   'o', 0, 'm'};
	expect_refused(nul, sizeof(nul), "NUL in summary");
	unsigned char lng[12 + 3 + 2 + HE_HEALTH_MAX] = {
	    'H', 'E', 'D', 'D',		  1, 0, 0, 0, 1, 0, 0, 0,
	    1,	 0,   'g', HE_HEALTH_MAX, 0};
	memset(lng + 17, 's', HE_HEALTH_MAX);
	expect_refused(lng, sizeof(lng), "summary too long");
	/* ... and the same with a fitting summary is accepted */
	lng[15] = HE_HEALTH_MAX - 1;
	cr_assert_eq(he_dedupe_import(d, lng, sizeof(lng) - 1), 0);
	cr_assert_eq(he_dedupe_size(d), 2);
	free(buf);
}

/* Through the core API, as hot swap uses it. */
Test(dedupe, core_export_import)
{
	he_core *a, *b;
	void *buf;
	size_t len;

	cr_assert_eq(he_core_new(NULL, &a), 0);
	cr_assert_eq(he_core_new(NULL, &b), 0);
	cr_assert_eq(he_core_export(a, &buf, &len), 0);
	cr_assert_eq(len, 12);
	cr_assert_eq(he_core_import(b, buf, len), 0);
	cr_assert_eq(he_core_cache_size(b), 0);
	cr_assert_eq(he_core_import(b, "garbage", 7), HE_EINVAL);
	free(buf);
	he_core_free(a);
	he_core_free(b);
	he_dedupe_free(NULL);
}

/* 100,000 games: the table stays small (slots + one small block each). */
Test(dedupe, hundred_thousand_games)
{
	char key[64];

	for (size_t i = 0; i < 100000; i++) {
		int len = snprintf(key, sizeof(key),
				   "0f8fad5b-d9cb-469f-a165-%012zu", i);
		cr_assert_eq(he_dedupe_set(d, key, (size_t)len,
					   i % 2 ? "oom" : "healthy"),
			     0);
	}
	cr_assert_eq(he_dedupe_size(d), 100000);
	for (size_t i = 0; i < 100000; i += 2) {
		int len = snprintf(key, sizeof(key),
				   "0f8fad5b-d9cb-469f-a165-%012zu", i);
		he_dedupe_remove(d, key, (size_t)len);
	}
	cr_assert_eq(he_dedupe_size(d), 50000);
	int len =
	    snprintf(key, sizeof(key), "0f8fad5b-d9cb-469f-a165-%012d", 1);
	cr_assert(he_dedupe_same(d, key, (size_t)len, "oom"));
}

/* ---- the byte budget ---------------------------------------------------- */

/* VmRSS of this process in bytes (Criterion runs each test alone). */
static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kib = 0;

	cr_assert(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %zu kB", &kib) == 1)
			break;
	fclose(f);
	return kib * 1024;
}

/*
 * valgrind's own bookkeeping, and ASan's quarantine of freed blocks (the
 * arrays left behind as they grow), make RSS meaningless for this check.
 */
static bool under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p != NULL && strstr(p, "vgpreload") != NULL;
}

static bool rss_meaningful(void)
{
#ifdef __SANITIZE_ADDRESS__
	return false;
#else
	return !under_valgrind();
#endif
}

/*
 * 1,000,000 games with short ids fit the default budget whole; the
 * process grows by the cache's bytes, not by a block per game.
 */
Test(dedupe, a_million_games_fit_in_the_budget, .timeout = 120)
{
	/* valgrind checks the same paths on a tenth of the games */
	const size_t N = under_valgrind() ? 100000 : 1000000;
	char key[32];
	size_t rss0 = rss_bytes();

	for (size_t i = 0; i < N; i++) {
		int len = snprintf(key, sizeof(key), "game-%06zu", i);
		cr_assert_eq(he_dedupe_set(d, key, (size_t)len,
					   i % 3 ? "healthy" : "oom"),
			     0);
	}
	cr_assert_eq(he_dedupe_size(d), N, "every game kept");
	cr_assert_eq(he_dedupe_evictions(d), 0);
	cr_assert_leq(he_dedupe_bytes(d), HE_DEDUPE_BUDGET);
	for (size_t i = 0; i < N; i += 9973) {
		int len = snprintf(key, sizeof(key), "game-%06zu", i);
		cr_assert(he_dedupe_same(d, key, (size_t)len,
					 i % 3 ? "healthy" : "oom"));
	}
	size_t grew = rss_bytes() - rss0;
	if (rss_meaningful())
		cr_assert_leq(grew, 40u << 20, "RSS grew by %zu MiB",
			      grew >> 20);
}

/*
 * Long ids (256 bytes) and custom summaries: the budget holds, by
 * evicting; the games set last are still there.
 */
Test(dedupe, long_ids_are_bounded_by_eviction, .timeout = 120)
{
	/* 300,000 fill the budget (under valgrind, 40,000 fill 4 MiB) */
	const size_t N = under_valgrind() ? 40000 : 300000;
	const size_t budget = under_valgrind() ? 4u << 20 : HE_DEDUPE_BUDGET;
	char key[HE_GAME_ID_MAX];
	if (budget != HE_DEDUPE_BUDGET) {
		he_dedupe_free(d);
		cr_assert_eq(he_dedupe_new_budget(budget, &d), 0);
	}
	size_t rss0 = rss_bytes();

	memset(key, 'k', sizeof(key));
	for (size_t i = 0; i < N; i++) {
		snprintf(key, 16, "%015zu", i);
		key[15] = '-';
		cr_assert_eq(he_dedupe_set(d, key, sizeof(key),
					   i % 2 ? "healthy" : "custom text"),
			     0);
	}
	cr_assert_gt(he_dedupe_evictions(d), 0);
	cr_assert_eq(he_dedupe_size(d) + he_dedupe_evictions(d), N);
	cr_assert_leq(he_dedupe_bytes(d), budget);
	for (size_t i = N - 100; i < N; i++) {
		snprintf(key, 16, "%015zu", i);
		key[15] = '-';
		cr_assert(he_dedupe_same(d, key, sizeof(key),
					 i % 2 ? "healthy" : "custom text"),
			  "game %zu, set last, kept", i);
	}
	size_t grew = rss_bytes() - rss0;
	if (rss_meaningful())
		cr_assert_leq(grew, (size_t)HE_DEDUPE_BUDGET + (4u << 20),
			      "RSS grew by %zu MiB", grew >> 20);
}

/*
 * A tiny budget under random set/remove/lookups: the cache never gives
 * a wrong summary (an absent game only costs a publish), stays within
 * its budget, and keeps the game just set.
 */
Test(dedupe, eviction_never_gives_a_wrong_answer)
{
	enum { KEYS = 5000, OPS = 60000 };
	static const char *sums[] = {"healthy", "oom", "custom one",
				     "another \"custom\""};
	static int model[KEYS];
	he_dedupe *t;
	char key[64];

	cr_assert_eq(he_dedupe_new_budget(16 << 10, &t), 0);
	for (size_t i = 0; i < KEYS; i++)
		model[i] = -1;
	for (size_t op = 0; op < OPS; op++) {
		uint32_t k = rng() % KEYS, what = rng() % 10;
		int len = snprintf(key, sizeof(key),
				   k % 2 ? "g%u" : "a-long-game-id-%u", k);
		if (what < 5) {
			int s = (int)(rng() % 4);
			cr_assert_eq(
			    he_dedupe_set(t, key, (size_t)len, sums[s]), 0);
			model[k] = s;
			cr_assert(he_dedupe_same(t, key, (size_t)len, sums[s]));
		} else if (what < 6) {
			he_dedupe_remove(t, key, (size_t)len);
			model[k] = -1;
		} else {
			char out[128];
			if (he_dedupe_get(t, key, (size_t)len, out,
					  sizeof(out))) {
				cr_assert_geq(model[k], 0, "key %u", k);
				cr_assert_str_eq(out, sums[model[k]]);
			}
		}
		cr_assert_leq(he_dedupe_bytes(t), 16 << 10);
	}
	cr_assert_gt(he_dedupe_evictions(t), 0);
	cr_assert_gt(he_dedupe_size(t), 100);
	he_dedupe_free(t);
}
