/* Stream ids and XREAD replies (core/he_stream_id.c, core/he_xread.c),
 * from RESP bytes as Redis sends them, through hiredis's own reader. */
#include "he_stream_id.h"
#include "he_xread.h"

#include <criterion/criterion.h>
#include <string.h>

Test(stream_id, parses_and_orders_ids)
{
	he_stream_id a, b;
	cr_assert_eq(he_stream_id_parse("1700000000000-5", &a), 0);
	cr_assert_eq(a.ms, 1700000000000ull);
	cr_assert_eq(a.seq, 5);
	cr_assert_eq(he_stream_id_parse("17", &b), 0, "ms alone");
	cr_assert_eq(b.seq, 0);
	cr_assert_gt(he_stream_id_cmp(a, b), 0);
	cr_assert_lt(he_stream_id_cmp(b, a), 0);
	cr_assert_eq(he_stream_id_cmp(a, a), 0);
	cr_assert_eq(he_stream_id_parse("2-10", &a), 0);
	cr_assert_eq(he_stream_id_parse("2-9", &b), 0);
	cr_assert_gt(he_stream_id_cmp(a, b), 0, "seq compares as a number");
}

Test(stream_id, refuses_what_is_not_an_id)
{
	static const char *const bad[] = {
	    "",	  "-1",	 "x",
	    "1-", "1-x", "1-2-3",
	    "1 ", "+1",	 "99999999999999999999999-0",
	    NULL};
	he_stream_id id;
	for (int i = 0; bad[i]; i++)
		cr_expect_eq(he_stream_id_parse(bad[i], &id), HE_EINVAL,
			     "\"%s\" parsed", bad[i]);
	cr_expect_eq(he_stream_id_parse(NULL, &id), HE_EINVAL);
}

/* One reply from RESP bytes; the caller frees it. */
static redisReply *resp_n(const char *bytes, size_t len)
{
	redisReader *r = redisReaderCreate();
	void *rep = NULL;
	cr_assert_eq(redisReaderFeed(r, bytes, len), REDIS_OK);
	cr_assert_eq(redisReaderGetReply(r, &rep), REDIS_OK);
	cr_assert_not_null(rep, "incomplete RESP in the test");
	redisReaderFree(r);
	return rep;
}

static redisReply *resp(const char *bytes)
{
	return resp_n(bytes, strlen(bytes));
}

/* A literal with NUL bytes in it. */
#define RESP_LIT(lit) resp_n((lit), sizeof(lit) - 1)

Test(xread, entries_point_into_the_reply)
{
	redisReply *rep =
	    RESP_LIT("*1\r\n*2\r\n$2\r\nin\r\n*3\r\n"
		     "*2\r\n$3\r\n1-1\r\n*4\r\n$7\r\ngame_id\r\n$2\r\ng1\r\n"
		     "$10\r\nevent_type\r\n$13\r\ncontainer_oom\r\n"
		     "*2\r\n$3\r\n1-2\r\n*-1\r\n" /* a deleted entry */
		     "*2\r\n$3\r\n1-3\r\n*1\r\n$3\r\na\0b\r\n");
	he_xread_entries b = {0};
	char err[128];
	size_t n;
	cr_assert_eq(he_xread_parse(&b, rep, &n, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(b.entries[0].id, "1-1");
	cr_assert_eq(b.entries[0].nitems, 4);
	cr_assert_eq(b.entries[0].lens[3], 13);
	cr_assert_eq(memcmp(b.entries[0].items[3], "container_oom", 13), 0);
	cr_assert_eq(b.entries[1].nitems, 0, "nil fields: no items");
	cr_assert_eq(b.entries[2].nitems, 1, "an odd item count is kept");
	cr_assert_eq(b.entries[2].lens[0], 3, "binary-safe");
	freeReplyObject(rep);

	rep = resp("*-1\r\n");
	cr_assert_eq(he_xread_parse(&b, rep, &n, err, sizeof(err)), 0);
	cr_assert_eq(n, 0, "nil: BLOCK ran out");
	freeReplyObject(rep);
	he_xread_free(&b);
}

Test(xread, refuses_other_shapes)
{
	static const char *const bad[] = {
	    "+OK\r\n",
	    "*2\r\n*2\r\n$1\r\na\r\n*0\r\n*2\r\n$1\r\nb\r\n*0\r\n",
	    "*1\r\n*2\r\n$2\r\nin\r\n:5\r\n",
	    "*1\r\n*2\r\n$2\r\nin\r\n*1\r\n*2\r\n:1\r\n*0\r\n",
	    "*1\r\n*2\r\n$2\r\nin\r\n*1\r\n*1\r\n$3\r\n1-1\r\n",
	    NULL};
	he_xread_entries b = {0};
	char err[128];
	size_t n;
	for (int i = 0; bad[i]; i++) {
		redisReply *rep = resp(bad[i]);
		cr_expect_eq(he_xread_parse(&b, rep, &n, err, sizeof(err)),
			     HE_EPROTO, "shape %d", i);
		cr_expect(strstr(err, "unexpected reply shape"), "%s", err);
		freeReplyObject(rep);
	}
	he_xread_free(&b);
}
