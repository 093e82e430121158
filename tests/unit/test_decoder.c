/*
 * test_decoder.c -- each malformed form is dead-lettered with its reason;
 * well-formed variants decode.
 */
#include "unit.h"

#include "he_decoder.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

TestSuite(decoder, .init = fx_setup, .fini = fx_teardown);

/* Values too big or too odd for a static table, made at run time. */
enum gen {
	GEN_NONE,
	GEN_GAME_ID_300, /* item 3: 300 bytes */
	GEN_GAME_ID_BAD_UTF8,
	GEN_GAME_ID_NUL,
	GEN_DETAILS_HUGE, /* item 5: HE_FIELD_MAX + 1 bytes */
	GEN_TYPE_1MIB,	  /* item 1: 1 MiB of 'x' */
	GEN_TYPE_CONTROL, /* item 1: "bad\ntype\x01" */
	GEN_NAME_HUGE,	  /* item 4: a field name of HE_FIELD_MAX + 1 */
};

/* What each gen puts over which item: fixed bytes, or len of fill. */
struct gen_value {
	size_t item;
	size_t len;
	const char *bytes;
	char fill;
};

static const struct gen_value gen_values[] = {
    [GEN_GAME_ID_300] = {3, 300, NULL, 'a'},
    [GEN_GAME_ID_BAD_UTF8] = {3, 3, "g\xc3\x28", 0},
    [GEN_GAME_ID_NUL] = {3, 3, "g\0h", 0},
    [GEN_DETAILS_HUGE] = {5, HE_FIELD_MAX + 1, NULL, 'd'},
    [GEN_TYPE_1MIB] = {1, 1 << 20, NULL, 'x'},
    [GEN_TYPE_CONTROL] = {1, 9, "bad\ntype\x01", 0},
    [GEN_NAME_HUGE] = {4, HE_FIELD_MAX + 1, NULL, 'n'},
};

struct bad_case {
	size_t nitems;
	const char *items[8];
	enum gen gen;
	const char *reason;
};

/*
 * Most forms are a good event_type with a bad game_id, or the other way
 * round; the gen value (if any) is then put over the bad one.
 */
#define BAD_GAME(game, gen, reason)                                            \
	{                                                                      \
		4, {"event_type", "container_oom", "game_id", game}, gen,      \
		    reason                                                     \
	}
#define BAD_TYPE(type, gen, reason)                                            \
	{                                                                      \
		4, {"event_type", type, "game_id", "g1"}, gen, reason          \
	}

static const struct bad_case malformed_is_dead_lettered_cases[] = {
    {2, {"event_type", "container_oom"}, GEN_NONE, "missing game_id"},
    BAD_GAME("", GEN_NONE, "empty game_id"),
    BAD_GAME("x", GEN_GAME_ID_300, "game_id longer than 256 bytes (300)"),
    BAD_GAME("x", GEN_GAME_ID_BAD_UTF8, "game_id is not valid UTF-8"),
    BAD_GAME("x", GEN_GAME_ID_NUL, "game_id contains a NUL byte"),
    {2, {"game_id", "g1"}, GEN_NONE, "missing event_type"},
    BAD_TYPE("", GEN_NONE, "empty event_type"),
    BAD_TYPE("foo", GEN_NONE, "unknown event_type \"foo\""),
    BAD_TYPE("Container_OOM", GEN_NONE, "unknown event_type \"Container_OOM\""),
    BAD_TYPE("x", GEN_TYPE_CONTROL, "unknown event_type \"bad\\x0atype\\x01\""),
    BAD_TYPE("x", GEN_TYPE_1MIB,
	     "unknown event_type \""
	     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	     "...\""),
    {6,
     {"event_type", "container_oom", "game_id", "g1", "details", "x"},
     GEN_DETAILS_HUGE,
     "field details longer than 65536 bytes"},
    {6,
     {"event_type", "container_oom", "game_id", "g1", "x", "y"},
     GEN_NAME_HUGE,
     "field name longer than 65536 bytes (65537)"},
    {3,
     {"event_type", "container_oom", "game_id"},
     GEN_NONE,
     "odd number of field items (3)"},
    {6,
     {"game_id", "g1", "event_type", "container_oom", "game_id", "g2"},
     GEN_NONE,
     "duplicate field game_id"},
    {6,
     {"event_type", "container_oom", "game_id", "g1", "event_type",
      "probe_failed"},
     GEN_NONE,
     "duplicate field event_type"},
    {0, {NULL}, GEN_NONE, "missing game_id"},
};

ParameterizedTestParameters(decoder, malformed_is_dead_lettered)
{
	INDEX_PARAMS(malformed_is_dead_lettered_cases);
}

ParameterizedTest(size_t *ip, decoder, malformed_is_dead_lettered)
{
	const struct bad_case *c = &malformed_is_dead_lettered_cases[*ip];
	batch b;
	char *big = NULL;
	size_t i;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	b_init(&b, 300);
	b_add(&b, "g1", "probe_failed"); /* a good entry before */
	b.n++;
	i = 1;
	for (size_t k = 0; k < c->nitems; k++)
		b_set(&b, i, k, c->items[k], strlen(c->items[k]));
	b.e[i].nitems = c->nitems;
	if (c->gen != GEN_NONE) {
		const struct gen_value *g = &gen_values[c->gen];
		const char *v = g->bytes;
		if (v == NULL) {
			big = malloc(g->len);
			memset(big, g->fill, g->len);
			v = big;
		}
		b_set(&b, i, g->item, v, g->len);
	}
	b_add(&b, "g1", "inspect_unhealthy"); /* and one after */

	cr_assert_eq(fx_run(&b), 0);
	cr_assert_eq(fx.reps[1].outcome, HE_ENTRY_DEAD_LETTERED);
	cr_assert_null(fx.reps[1].event_type);
	cr_assert_str_eq(fx.reps[1].reason, c->reason);
	cr_assert_eq(fx.box.ndead, 1);
	cr_assert_str_eq(fx.box.dead[0].reason, c->reason);
	cr_assert_eq(fx.box.dead[0].entry, &b.e[1]);
	/* It never stalls the stream: both neighbours were processed. */
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_HEALTH_ONLY);
	cr_assert_eq(fx.reps[2].outcome, HE_ENTRY_HEALTH_ONLY);
	cr_assert_eq(fx.box.nsnapshots, 2);
	cr_assert_str_eq(fx.box.last_id, "300-2");
	/* One warning naming the entry, short even for a 1 MiB value. */
	cr_assert_eq(
	    mock_host_log_count(fx.mh, APPHOST_LOG_WARN, "entry=300-1"), 1);
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_WARN, NULL), 1);
	cr_assert_lt(mock_host_log_longest(fx.mh), 600);
	free(big);
}

/* Direct decoder checks: what decodes, and what it borrows. */

struct good_case {
	size_t nitems;
	const char *items[10];
	const char *type;
	const char *game_id;
};

static const struct good_case wellformed_decodes_cases[] = {
    {4, {"game_id", "g1", "event_type", "probe_failed"}, "probe_failed", "g1"},
    {10,
     {"occurred_at", "1", "container_id", "c", "game_id", "g", "event_type",
      "container_started", "unknown", "ignored"},
     "container_started",
     "g"},
    {4,
     {"event_type", "container_oom", "game_id", "\xc3\xa9t\xc3\xa9"},
     "container_oom",
     "\xc3\xa9t\xc3\xa9"},
    /* control characters are legal in a game id: JSON escapes them */
    {4,
     {"event_type", "container_oom", "game_id", "a\tb"},
     "container_oom",
     "a\tb"},
    /* unknown fields may repeat */
    {8,
     {"x", "1", "x", "2", "event_type", "probe_failed", "game_id", "g"},
     "probe_failed",
     "g"},
};

ParameterizedTestParameters(decoder, wellformed_decodes)
{
	INDEX_PARAMS(wellformed_decodes_cases);
}

ParameterizedTest(size_t *ip, decoder, wellformed_decodes)
{
	const struct good_case *c = &wellformed_decodes_cases[*ip];
	size_t lens[10];
	he_stream_entry e = {"1-1", c->nitems, c->items, lens};
	he_decoded d;
	char reason[HE_REASON_MAX];

	for (size_t i = 0; i < c->nitems; i++)
		lens[i] = strlen(c->items[i]);
	cr_assert_eq(he_decode(&e, &d, reason), 0, "%s", reason);
	cr_assert_str_eq(d.type->name, c->type);
	cr_assert_eq(d.game_id_len, strlen(c->game_id));
	cr_assert_eq(memcmp(d.game_id, c->game_id, d.game_id_len), 0);
}

Test(decoder, game_id_limits_exactly)
{
	static char id[HE_GAME_ID_MAX + 1];
	const char *items[4] = {"event_type", "probe_failed", "game_id", id};
	size_t lens[4] = {10, 12, 7, HE_GAME_ID_MAX};
	he_stream_entry e = {"1-1", 4, items, lens};
	he_decoded d;
	char reason[HE_REASON_MAX];

	memset(id, 'a', sizeof(id));
	cr_assert_eq(he_decode(&e, &d, reason), 0);
	cr_assert_eq(d.game_id_len, 256);
	lens[3] = HE_GAME_ID_MAX + 1;
	cr_assert_eq(he_decode(&e, &d, reason), HE_EINVAL);
	cr_assert_str_eq(reason, "game_id longer than 256 bytes (257)");
}

Test(decoder, details_at_the_limit_is_fine)
{
	char *v = malloc(HE_FIELD_MAX);
	const char *items[6] = {"event_type", "probe_failed", "game_id",
				"g",	      "details",      v};
	size_t lens[6] = {10, 12, 7, 1, 7, HE_FIELD_MAX};
	he_stream_entry e = {"1-1", 6, items, lens};
	he_decoded d;
	char reason[HE_REASON_MAX];

	memset(v, 'd', HE_FIELD_MAX);
	cr_assert_eq(he_decode(&e, &d, reason), 0, "%s", reason);
	free(v);
}

/* Every truncation of a 4-byte sequence and a few classic bad forms. */
Test(decoder, utf8_validation)
{
	static const struct {
		const char *s;
		size_t n;
		bool ok;
	} cases[] = {
	    {"\xf0\x9f\x8e\xb2", 4, true},  /* U+1F3B2 */
	    {"\xf0\x9f\x8e", 3, false},	    /* truncated */
	    {"\xc0\xaf", 2, false},	    /* overlong '/' */
	    {"\xe0\x80\xaf", 3, false},	    /* overlong */
	    {"\xed\xa0\x80", 3, false},	    /* surrogate */
	    {"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
	    {"\x80", 1, false},		    /* stray continuation */
	    {"\xef\xbf\xbd", 3, true},	    /* U+FFFD */
	    {"plain", 5, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *items[4] = {"event_type", "probe_failed", "game_id",
					cases[i].s};
		size_t lens[4] = {10, 12, 7, cases[i].n};
		he_stream_entry e = {"1-1", 4, items, lens};
		he_decoded d;
		char reason[HE_REASON_MAX];
		int rc = he_decode(&e, &d, reason);
		cr_assert_eq(rc == 0, cases[i].ok, "case %zu: %s", i, reason);
	}
}
