/* test_url.c -- redis:// parsing and secret redaction (no I/O). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "url.h"

/* Criterion runs each case in a fresh process (exec, ASLR): cases hold
 * arrays, never pointers. "-" stands for "no user/password". */
struct url_case {
	char url[48];
	char host[24];
	unsigned port, db;
	char user[8], password[8];
};

ParameterizedTestParameters(url, parse)
{
	static struct url_case cases[] = {
	    {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, "-", "-"},
	    {"redis://localhost", "localhost", 6379, 0, "-", "-"},
	    {"redis://localhost/", "localhost", 6379, 0, "-", "-"},
	    {"redis://h:7000/3", "h", 7000, 3, "-", "-"},
	    {"redis://:secret@h:1/2", "h", 1, 2, "-", "secret"},
	    {"redis://alice:s3cr%40t@h/0", "h", 6379, 0, "alice", "s3cr@t"},
	    {"redis://:p@ss@h:6380", "h", 6380, 0, "-", "p@ss"},
	    {"redis://[::1]:6390/1", "::1", 6390, 1, "-", "-"},
	    {"REDIS://H:1/0", "H", 1, 0, "-", "-"},
	};
	return TABLE_PARAMS(struct url_case, cases);
}

ParameterizedTest(struct url_case *c, url, parse)
{
	struct apphost_redis_url u;
	char err[256] = "";
	int rc = apphost_redis_url_parse(c->url, &u, err, sizeof(err));

	cr_assert_eq(rc, 0, "%s: rc %d (%s)", c->url, rc, err);
	cr_assert_str_eq(u.host, c->host);
	cr_assert_eq(u.port, c->port, "%s: port %u", c->url, u.port);
	cr_assert_eq(u.db, c->db);
	if (strcmp(c->user, "-") == 0)
		cr_assert_null(u.user, "%s: user %s", c->url, u.user);
	else
		cr_assert_str_eq(u.user, c->user);
	if (strcmp(c->password, "-") == 0)
		cr_assert_null(u.password);
	else
		cr_assert_str_eq(u.password, c->password);
	apphost_redis_url_clear(&u);
}

/* Refused: each with a reason, none of which repeats the URL's secret. */
struct refused_case {
	char url[48];
};

/* The refusal of rediss:// says why and where to go instead. */
Test(url, rediss_refusal_points_to_the_sidecar)
{
	struct apphost_redis_url u;
	char err[300] = "";

	cr_assert_eq(
	    apphost_redis_url_parse("rediss://:pw@h:1/0", &u, err, sizeof(err)),
	    APPHOST_EINVAL);
	cr_expect(strstr(err, "hiredis") != NULL, "%s", err);
	cr_expect(strstr(err, "stunnel4") != NULL, "%s", err);
	cr_expect(strstr(err, "Redis over TLS") != NULL, "%s", err);
	cr_expect(strstr(err, "pw") == NULL, "%s", err);
}

ParameterizedTestParameters(url, refused)
{
	static struct refused_case cases[] = {
	    {""},
	    {"http://h:1/0"},
	    {"rediss://h:1/0"},
	    {"redis://h:0/0"},
	    {"redis://h:65536/0"},
	    {"redis://h:port/0"},
	    {"redis://h:1/x"},
	    {"redis://:1/0"},
	    {"redis://secret@h/0"},
	    {"redis://h/0?x=1"},
	    {"redis://:%zz@h/0"},
	    {"redis://[::1/0"},
	};
	return TABLE_PARAMS(struct refused_case, cases);
}

ParameterizedTest(struct refused_case *c, url, refused)
{
	struct apphost_redis_url u;
	char err[256] = "";
	int rc = apphost_redis_url_parse(c->url, &u, err, sizeof(err));

	cr_assert_eq(rc, APPHOST_EINVAL, "%s: rc %d (%s), want %d", c->url, rc,
		     err, APPHOST_EINVAL);
	cr_assert(err[0] != '\0', "%s: no reason given", c->url);
	cr_assert(strstr(err, "secret") == NULL, "%s: leaks: %s", c->url, err);
}

struct redact_case {
	char in[64], out[64];
};

ParameterizedTestParameters(url, redact)
{
	static struct redact_case cases[] = {
	    {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
	    {"redis://:secret@h:1/0", "redis://:***@h:1/0"},
	    {"redis://alice:secret@h/0", "redis://alice:***@h/0"},
	    {"redis://secret@h/0", "redis://***@h/0"},
	    {"redis://:p@ss@h/0", "redis://:***@h/0"},
	    /* unescaped '/', '?', '#' in a password: the URL is refused
	     * and logged, so it must be hidden all the same */
	    {"redis://:pa/ss@h:1/0", "redis://:***@h:1/0"},
	    {"redis://:pa?ss@h/0", "redis://:***@h/0"},
	    {"redis://u:p#w@h/0", "redis://u:***@h/0"},
	    {"redis://se/cret@h/0", "redis://***@h/0"},
	    {"postgresql://bob:se/cret@db/gm", "postgresql://bob:***@db/gm"},
	    {"postgresql://bob:secret@db:5432/gm",
	     "postgresql://bob:***@db:5432/gm"},
	    {"postgresql://bob@db/gm", "postgresql://bob@db/gm"},
	    {"postgresql://db/gm?user=u&password=secret&sslmode=off",
	     "postgresql://db/gm?user=u&password=***&sslmode=off"},
	    {"host=db password=secret dbname=gm",
	     "host=db password=*** dbname=gm"},
	    {"password=secret", "password=***"},
	    {"host=db sslpassword=keypass dbname=gm",
	     "host=db sslpassword=*** dbname=gm"},
	    {"postgresql://db/gm?sslpassword=k&sslmode=require",
	     "postgresql://db/gm?sslpassword=***&sslmode=require"},
	    {"host=db password = 'se cret\\' x' user=u",
	     "host=db password = *** user=u"},
	    {"host=db PASSWORD=secret", "host=db PASSWORD=***"},
	    {"host=db mypassword=x", "host=db mypassword=x"},
	    {"", ""},
	};
	return TABLE_PARAMS(struct redact_case, cases);
}

ParameterizedTest(struct redact_case *c, url, redact)
{
	char *got = apphost_redact(c->in);

	cr_assert_not_null(got);
	cr_assert_str_eq(got, c->out, "redact(%s) = %s, want %s", c->in, got,
			 c->out);
	free(got);
}

Test(url, redact_null)
{
	cr_assert_null(apphost_redact(NULL));
}

struct shown_case {
	char url[48], shown[48]; /* "" for APPHOST_REDIS_URL_UNPARSABLE */
};

ParameterizedTestParameters(url, shown)
{
	static struct shown_case cases[] = {
	    {"redis://:secret@h:1/2", "h:1/2"},
	    {"redis://alice:secret@[::1]:6390/1", "[::1]:6390/1"},
	    {"redis://localhost", "localhost:6379/0"},
	    /* malformed: what follows a clean '@' when it is plainly an
	     * address, else nothing */
	    {"redis://:secret@h:99999/0", "h:99999/0"},
	    {"redis://:secret@h:1/x", ""},
	    {"redis:/:secret@h", ""},
	    {"redis//:secret@h/0", ""},
	    {"redis://:secret", ""},
	    {"redis://h:secret/0", ""},
	    {"redis://secret@h/0", "h/0"},
	    {"redis://:se/cret@h:1/0?x", ""},
	    {"rediss://:secret@h:1/0", ""},
	    {"", ""},
	};
	return TABLE_PARAMS(struct shown_case, cases);
}

ParameterizedTest(struct shown_case *c, url, shown)
{
	char buf[300];

	apphost_redis_url_shown(c->url, buf, sizeof(buf));
	cr_assert_str_eq(buf,
			 c->shown[0] ? c->shown : APPHOST_REDIS_URL_UNPARSABLE,
			 "%s shown as %s", c->url, buf);
	cr_assert(strstr(buf, "secret") == NULL, "%s: %s", c->url, buf);
}
