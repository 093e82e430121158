/* dsn.c -- see dsn.h. */
#include "dsn.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "strbuf.h"
#include "url.h"

static void set_err(char *err, size_t errlen, const char *why)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", why);
}

static bool secret(const PQconninfoOption *o)
{
	return (o->dispchar != NULL && o->dispchar[0] == '*') ||
	       strcmp(o->keyword, "password") == 0 ||
	       strcmp(o->keyword, "sslpassword") == 0;
}

/*
 * Why the parsed options cannot be what the operator meant, or NULL. An
 * unescaped '@', '/' or ':' in a URI password makes libpq split the URI
 * elsewhere, and the password's pieces land in host or port, which are
 * logged (and quoted by libpq's connect errors). No host name holds '@'
 * and a port is a number (or a comma list of them), so those are refused
 * instead of shown; so is a URI's database name with '@'.
 */
static const char *suspect(const char *dsn, const PQconninfoOption *opts)
{
	bool uri = strncmp(dsn, "postgresql://", 13) == 0 ||
		   strncmp(dsn, "postgres://", 11) == 0;

	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if ((strcmp(o->keyword, "host") == 0 ||
		     strcmp(o->keyword, "hostaddr") == 0) &&
		    strchr(o->val, '@') != NULL)
			return "the host holds '@' (in a URI, write '@' in a "
			       "password as %40)";
		if (strcmp(o->keyword, "port") == 0 &&
		    strspn(o->val, "0123456789,") != strlen(o->val))
			return "the port is not a number (in a URI, write '/', "
			       "':' or '@' in a password as %2F, %3A, %40)";
		/* "postgresql://u:12/pw@h/d": host u, port 12, dbname
		 * "pw@h/d". A real name with '@' is rare; refused too. */
		if (uri && strcmp(o->keyword, "dbname") == 0 &&
		    strchr(o->val, '@') != NULL)
			return "the database name holds '@' (in a URI, write "
			       "'/' in a password as %2F)";
	}
	return NULL;
}

/* Append v as a conninfo value: bare when it can be, else 'quoted'. */
static void put_value(struct apphost_strbuf *b, const char *v)
{
	bool bare = v[0] != '\0' && strpbrk(v, " \t\n\r\f\v'\\") == NULL;

	if (bare) {
		apphost_strbuf_put(b, v, strlen(v));
		return;
	}
	apphost_strbuf_put(b, "'", 1);
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '\'' || *p == '\\')
			apphost_strbuf_put(b, "\\", 1);
		apphost_strbuf_put(b, p, 1);
	}
	apphost_strbuf_put(b, "'", 1);
}

int apphost_dsn_redact(const char *dsn, char **shown, char *err, size_t errlen)
{
	struct apphost_strbuf b = {0};
	PQconninfoOption *opts;
	const char *why;
	char *msg = NULL;

	*shown = NULL;
	opts = PQconninfoParse(dsn != NULL ? dsn : "", &msg);
	if (opts == NULL) {
		/* msg quotes the offending token: never shown. */
		PQfreemem(msg);
		*shown = strdup(APPHOST_DSN_UNPARSABLE);
		if (*shown == NULL)
			return APPHOST_ENOMEM;
		set_err(err, errlen,
			"not a valid libpq conninfo or URI (values with spaces "
			"need 'quotes'; a URI needs %-escapes)");
		return APPHOST_EINVAL;
	}
	why = suspect(dsn != NULL ? dsn : "", opts);
	if (why != NULL) {
		PQconninfoFree(opts);
		*shown = strdup(APPHOST_DSN_UNPARSABLE);
		if (*shown == NULL)
			return APPHOST_ENOMEM;
		set_err(err, errlen, why);
		return APPHOST_EINVAL;
	}
	apphost_strbuf_put(&b, "", 0);
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		char *v;

		if (o->val == NULL || secret(o))
			continue;
		/* A value may itself read as a DSN (dbname='postgresql://
		 * u:pw@h/d' is a plain name to libpq): mask that too. */
		v = apphost_redact(o->val);
		if (b.len > 0)
			apphost_strbuf_put(&b, " ", 1);
		apphost_strbuf_put(&b, o->keyword, strlen(o->keyword));
		apphost_strbuf_put(&b, "=", 1);
		if (v == NULL)
			b.oom = true;
		else
			put_value(&b, v);
		free(v);
	}
	PQconninfoFree(opts);
	*shown = apphost_strbuf_take(&b, NULL);
	return *shown != NULL ? 0 : APPHOST_ENOMEM;
}

void apphost_dsn_error_summary(const char *msg, char *err, size_t errlen)
{
	/* First match wins; the order puts specific phrases first. */
	static const struct {
		const char *needle, *summary;
	} table[] = {
	    {"could not translate host name", "host name not found"},
	    {"Connection refused", "connection refused"},
	    {"timeout expired", "connect timeout"},
	    {"Network is unreachable", "network unreachable"},
	    {"No route to host", "network unreachable"},
	    {"No such file or directory", "no server socket"},
	    {"no password supplied", "password required, none given"},
	    {"password authentication failed", "authentication failed"},
	    {"authentication failed", "authentication failed"},
	    {"pg_hba.conf", "refused by the server's pg_hba.conf"},
	    {"permission denied", "permission denied"},
	    {"too many clients", "no free connection slots"},
	    {"connection slots are reserved", "no free connection slots"},
	    {"starting up", "server starting up"},
	    {"shutting down", "server shutting down"},
	    {"recovery", "server in recovery"},
	    {"read-only", "server is read-only (a standby)"},
	    {"hot standby", "server is read-only (a standby)"},
	    {"FATAL:  role \"", "role does not exist"},
	    {"FATAL:  database \"", "database does not exist"},
	    {"SSL", "TLS failed"},
	    {"certificate", "TLS failed"},
	    {"invalid", "invalid connection parameter"},
	    {"closed the connection", "server closed the connection"},
	    {"out of memory", "out of memory"},
	};
	const char *s = "connection failed (libpq's message withheld: it may "
			"quote the DSN)";

	for (size_t i = 0; msg != NULL && i < sizeof(table) / sizeof(table[0]);
	     i++) {
		if (strstr(msg, table[i].needle) != NULL) {
			s = table[i].summary;
			break;
		}
	}
	set_err(err, errlen, s);
}
