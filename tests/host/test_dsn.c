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
	char msg[240];
	char want[64];
	char secret[16];
	int code; /* the class it returns */
};

ParameterizedTestParameters(dsn, error_summary)
{
	static struct summary_case cases[] = {
	    {"could not translate host name \"t@host\" to address: Name or "
	     "service not known\n",
	     "host name not found", "t@host", APPHOST_ECONN},
	    {"connection to server at \"127.0.0.1\", port 1 failed: "
	     "Connection refused\n\tIs the server running on that host?\n",
	     "connection refused", "127.0.0.1", APPHOST_ECONN},
	    {"connection to server at \"h\" (10.0.0.1), port 5432 failed: "
	     "FATAL:  password authentication failed for user \"app\"\n",
	     "authentication failed", "app", APPHOST_EAUTH},
	    {"invalid integer value \"s3\" for connection option \"port\"\n",
	     "invalid connection parameter", "s3", APPHOST_ECONN},
	    {"connection to server at \"h\", port 5432 failed: FATAL:  "
	     "database \"gm\" does not exist\n",
	     "database does not exist", "gm", APPHOST_ECONN},
	    {"something new from libpq \"pw\"\n", "connection failed", "pw",
	     APPHOST_ECONN},
	    /* TLS: each failure its own phrase, matched without libpq's
	     * quoted host names and paths (which could hold the phrase) */
	    {"connection to server at \"db\", port 5432 failed: SSL error: "
	     "certificate verify failed\n",
	     "TLS: server certificate not trusted", "db", APPHOST_ECONN},
	    {"connection to server at \"127.0.0.1\", port 5432 failed: "
	     "server certificate for \"pg.internal\" does not match host "
	     "name \"127.0.0.1\"\n",
	     "TLS: server certificate does not match host name", "pg.internal",
	     APPHOST_ECONN},
	    {"connection to server at \"db\", port 5432 failed: root "
	     "certificate file \"/etc/x/No such file or directory.crt\" does "
	     "not exist\nEither provide the file or change sslmode to "
	     "disable server certificate verification.\n",
	     "TLS: root certificate file missing", "/etc/x", APPHOST_ECONN},
	    {"connection to server at \"db\", port 5432 failed: server does "
	     "not support SSL, but SSL was required\n",
	     "TLS: server does not support SSL", "db", APPHOST_ECONN},
	    {"connection to server at \"certificate-host\", port 5432 failed: "
	     "SSL SYSCALL error: EOF detected\n",
	     "TLS failed", "certificate-host", APPHOST_ECONN},
	    /* a host name holding a phrase decides nothing */
	    {"could not connect to \"SSL permission denied\": Connection "
	     "refused\n",
	     "connection refused", "permission", APPHOST_ECONN},
	    /* classes: credentials and privileges are not outages */
	    {"connection to server at \"h\", port 5432 failed: fe_sendauth: "
	     "no password supplied\n",
	     "password required", "h\"", APPHOST_EAUTH},
	    {"connection to server at \"h\", port 5432 failed: FATAL:  no "
	     "pg_hba.conf entry for host \"10.1.1.1\", user \"app\"\n",
	     "refused by the server's pg_hba.conf", "10.1.1.1", APPHOST_EAUTH},
	    {"connection to server at \"h\", port 5432 failed: FATAL:  role "
	     "\"ghost\" does not exist\n",
	     "role does not exist", "ghost", APPHOST_EAUTH},
	    {"connection to server at \"h\", port 5432 failed: FATAL:  "
	     "permission denied for database \"gm\"\nDETAIL:  User does not "
	     "have CONNECT privilege.\n",
	     "permission denied", "gm", APPHOST_EPERM},
	};
	return cr_make_param_array(struct summary_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct summary_case *c, dsn, error_summary)
{
	char err[256];

	int code = apphost_dsn_error_summary(c->msg, err, sizeof(err));

	cr_assert(strncmp(err, c->want, strlen(c->want)) == 0, "%s -> %s",
		  c->msg, err);
	cr_assert(strstr(err, c->secret) == NULL, "%s", err);
	cr_assert_eq(code, c->code, "%s -> %s", c->msg, apphost_err_name(code));
}
