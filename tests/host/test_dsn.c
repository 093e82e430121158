/* test_dsn.c -- PostgreSQL DSN display rebuilt from libpq's own parse,
 * and libpq messages summarised (no I/O). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"

/* Arrays, never pointers: each case runs in a fresh process. `secret`
 * must appear neither in the text shown nor in the reason. */
struct dsn_case {
	char in[64];
	int rc;
	char shown[64]; /* "" for APPHOST_DSN_UNPARSABLE */
	char secret[16];
};

ParameterizedTestParameters(dsn, redact)
{
	static struct dsn_case cases[] = {
	    /* a value with '&' is one token to libpq */
	    {"host=db password=Tr0ub&dor", 0, "host=db", "dor"},
	    /* a quoted value runs straight into the next keyword */
	    {"dbname='d'password=secret", 0, "dbname=d", "secret"},
	    /* libpq decodes %-escapes in URI keys too */
	    {"postgresql://h/db?pass%77ord=secret", 0, "dbname=db host=h",
	     "secret"},
	    {"postgresql://bob:secret@db:5432/gm", 0,
	     "user=bob dbname=gm host=db port=5432", "secret"},
	    {"host=db password = 'se cret\\' x' user=u", 0, "user=u host=db",
	     "cret"},
	    {"host=db sslpassword=keypass dbname=gm", 0, "dbname=gm host=db",
	     "keypass"},
	    {"postgresql://db/gm?sslpassword=keyp&sslmode=require", 0,
	     "dbname=gm host=db sslmode=require", "keyp"},
	    {"host='my host' dbname=''", 0, "dbname='' host='my host'", "-"},
	    {"dbname='postgresql://u:secret@h/d'", 0,
	     "dbname=postgresql://u:***@h/d", "secret"},
	    /* unescaped '@' or '/' in a URI password: libpq splits it
	     * elsewhere and the pieces land in host, port or dbname */
	    {"postgresql://app:s3cr@t@host/db", APPHOST_EINVAL, "", "s3cr"},
	    {"postgresql://app:s3/cr@host/db", APPHOST_EINVAL, "", "s3"},
	    {"postgresql://app:12/cr@host/db", APPHOST_EINVAL, "", "cr@"},
	    /* libpq's parse errors quote the token: never shown */
	    {"postgres://u:p%zzword@h/d", APPHOST_EINVAL, "", "zzword"},
	    {"host=db PASSWORD=secret", APPHOST_EINVAL, "", "secret"},
	    {"host=x password=hunter2 junk", APPHOST_EINVAL, "", "hunter2"},
	};
	return cr_make_param_array(struct dsn_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct dsn_case *c, dsn, redact)
{
	char *shown = NULL, err[256] = "";
	int rc = apphost_dsn_redact(c->in, &shown, err, sizeof(err));

	cr_assert_eq(rc, c->rc, "%s: rc %d (%s)", c->in, rc, err);
	cr_assert_not_null(shown);
	cr_assert_str_eq(shown, c->shown[0] ? c->shown : APPHOST_DSN_UNPARSABLE,
			 "%s shown as %s", c->in, shown);
	if (rc < 0)
		cr_assert(err[0] != '\0', "%s: no reason", c->in);
	cr_assert(strstr(shown, c->secret) == NULL, "%s: %s", c->in, shown);
	cr_assert(strstr(err, c->secret) == NULL, "%s: %s", c->in, err);
	free(shown);
}

struct summary_case {
	char msg[160];
	char want[48];
	char secret[16];
};

ParameterizedTestParameters(dsn, error_summary)
{
	static struct summary_case cases[] = {
	    {"could not translate host name \"t@host\" to address: Name or "
	     "service not known\n",
	     "host name not found", "t@host"},
	    {"connection to server at \"127.0.0.1\", port 1 failed: "
	     "Connection refused\n\tIs the server running on that host?\n",
	     "connection refused", "127.0.0.1"},
	    {"connection to server at \"h\" (10.0.0.1), port 5432 failed: "
	     "FATAL:  password authentication failed for user \"app\"\n",
	     "authentication failed", "app"},
	    {"invalid integer value \"s3\" for connection option \"port\"\n",
	     "invalid connection parameter", "s3"},
	    {"connection to server at \"h\", port 5432 failed: FATAL:  "
	     "database \"gm\" does not exist\n",
	     "database does not exist", "gm"},
	    {"something new from libpq \"pw\"\n", "connection failed", "pw"},
	};
	return cr_make_param_array(struct summary_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct summary_case *c, dsn, error_summary)
{
	char err[256];

	apphost_dsn_error_summary(c->msg, err, sizeof(err));
	cr_assert(strncmp(err, c->want, strlen(c->want)) == 0, "%s -> %s",
		  c->msg, err);
	cr_assert(strstr(err, c->secret) == NULL, "%s", err);
}
