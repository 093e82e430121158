/*
 * test_snapshot.c -- the payload bytes, byte for byte.
 */
#include "he_snapshot.h"

#include "unit.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static he_row mkrow(const char *status, const char *health, int turn)
{
	he_row r;
	memset(&r, 0, sizeof(r));
	strcpy(r.status, status);
	strcpy(r.engine_health, health);
	r.current_turn = turn;
	return r;
}

Test(snapshot, design_example)
{
	he_row r = mkrow("engine_unreachable", "oom", 7);
	char *p;
	size_t n;

	cr_assert_eq(he_snapshot_build("g1", 2, &r, &p, &n), 0);
	const char *want =
	    "{\"game_id\":\"g1\",\"runtime_status\":\"engine_unreachable\","
	    "\"engine_health_summary\":\"oom\",\"current_turn\":7,"
	    "\"player_turn_stats\":null}";
	cr_assert_str_eq(p, want);
	cr_assert_eq(n, strlen(want));
	cr_assert_eq(he_snapshot_len("g1", 2, &r), n);
	free(p);
}

struct esc_case {
	const char *game_id;
	size_t game_id_len;
	const char *health;
	int turn;
	const char *want_game_id; /* the JSON string body */
	const char *want_health;
	const char *want_turn;
};

static const struct esc_case escaping_byte_for_byte_cases[] = {
    {"a\"b", 3, "", 0, "a\\\"b", "", "0"},
    {"back\\slash", 10, "x", 1, "back\\\\slash", "x", "1"},
    {"\b\f\n\r\t", 5, "", 2, "\\b\\f\\n\\r\\t", "", "2"},
    {"\x01\x1f\x7f", 3, "", 3, "\\u0001\\u001f\x7f", "", "3"},
    {"nul\0x", 5, "", 4, "nul\\u0000x", "", "4"},
    /* non-ASCII UTF-8 passes through as is */
    {"\xc3\xa9t\xc3\xa9-\xe6\xb8\xb8\xe6\x88\x8f-\xf0\x9f\x8e\xb2", 17, "", 5,
     "\xc3\xa9t\xc3\xa9-\xe6\xb8\xb8\xe6\x88\x8f-\xf0\x9f\x8e\xb2", "", "5"},
    /* strings from the row are escaped too; bad bytes -> U+FFFD */
    {"g", 1, "say \"hi\"\n", 6, "g", "say \\\"hi\\\"\\n", "6"},
    {"g", 1, "bad\xff", -1, "g", "bad\\ufffd", "-1"},
    {"g", 1, "", 2147483647, "g", "", "2147483647"},
    {"g", 1, "", -2147483647 - 1, "g", "", "-2147483648"},
    {"</script>", 9, "", 0, "</script>", "", "0"},
};

ParameterizedTestParameters(snapshot, escaping_byte_for_byte)
{
	INDEX_PARAMS(escaping_byte_for_byte_cases);
}

ParameterizedTest(size_t *ip, snapshot, escaping_byte_for_byte)
{
	const struct esc_case *c = &escaping_byte_for_byte_cases[*ip];
	he_row r = mkrow("running", c->health, c->turn);
	char want[1024], *p;
	size_t n;

	snprintf(want, sizeof(want),
		 "{\"game_id\":\"%s\",\"runtime_status\":\"running\","
		 "\"engine_health_summary\":\"%s\",\"current_turn\":%s,"
		 "\"player_turn_stats\":null}",
		 c->want_game_id, c->want_health, c->want_turn);
	cr_assert_eq(he_snapshot_build(c->game_id, c->game_id_len, &r, &p, &n),
		     0);
	cr_assert_eq(n, strlen(want), "got %s", p);
	cr_assert_eq(memcmp(p, want, n), 0, "got %s\nwant %s", p, want);
	cr_assert_eq(p[n], '\0');
	free(p);
}

Test(snapshot, same_row_same_bytes_and_unterminated_row_is_bounded)
{
	he_row r;
	char a[2048], b[2048];

	memset(&r, 'z', sizeof(r)); /* no NUL anywhere in status/health */
	r.current_turn = 1;
	size_t na = he_snapshot_len("g", 1, &r);
	cr_assert_lt(na, sizeof(a));
	he_snapshot_write(a, "g", 1, &r);
	he_snapshot_write(b, "g", 1, &r);
	cr_assert_str_eq(a, b);
	cr_assert_eq(strlen(a), na);
}
