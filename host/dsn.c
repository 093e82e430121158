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

/*
 * msg with the inside of every "..." removed (the quotes stay), into buf:
 * libpq quotes host names, certificate names and file paths, which must
 * neither be shown nor decide the match (a host named "SSL-db").
 */
static void unquote(const char *msg, char *buf, size_t cap)
{
	size_t n = 0;
	bool in = false;

	for (; *msg != '\0' && n + 1 < cap; msg++) {
		if (*msg == '"') {
			in = !in;
			buf[n++] = '"';
		} else if (!in) {
			buf[n++] = *msg;
		}
	}
	buf[n] = '\0';
}

int apphost_dsn_error_summary(const char *msg, char *err, size_t errlen)
{
	/* First match wins; the order puts specific phrases first. */
	static const struct {
		const char *needle, *summary;
		int code;
	} table[] = {
	    {"certificate verify failed",
	     "TLS: server certificate not trusted (certificate verify "
	     "failed: check sslrootcert)",
	     APPHOST_ECONN},
	    {"does not match host name",
	     "TLS: server certificate does not match host name", APPHOST_ECONN},
	    {"root certificate file",
	     "TLS: root certificate file missing or unreadable (sslrootcert)",
	     APPHOST_ECONN},
	    {"server does not support SSL",
	     "TLS: server does not support SSL (ssl=off on the server)",
	     APPHOST_ECONN},
	    {"could not translate host name", "host name not found",
	     APPHOST_ECONN},
	    {"Connection refused", "connection refused", APPHOST_ECONN},
	    {"timeout expired", "connect timeout", APPHOST_ECONN},
	    {"Network is unreachable", "network unreachable", APPHOST_ECONN},
	    {"No route to host", "network unreachable", APPHOST_ECONN},
	    {"No such file or directory", "no server socket", APPHOST_ECONN},
	    {"no password supplied", "password required, none given",
	     APPHOST_EAUTH},
	    {"password authentication failed", "authentication failed",
	     APPHOST_EAUTH},
	    {"authentication failed", "authentication failed", APPHOST_EAUTH},
	    {"pg_hba.conf", "refused by the server's pg_hba.conf",
	     APPHOST_EAUTH},
	    {"permission denied", "permission denied", APPHOST_EPERM},
	    {"does not have CONNECT privilege", "permission denied",
	     APPHOST_EPERM},
	    {"too many clients", "no free connection slots", APPHOST_ECONN},
	    {"connection slots are reserved", "no free connection slots",
	     APPHOST_ECONN},
	    {"starting up", "server starting up", APPHOST_ECONN},
	    {"shutting down", "server shutting down", APPHOST_ECONN},
	    {"recovery", "server in recovery", APPHOST_ECONN},
	    {"read-only", "server is read-only (a standby)", APPHOST_ECONN},
	    {"hot standby", "server is read-only (a standby)", APPHOST_ECONN},
	    {"FATAL:  role \"\"", "role does not exist", APPHOST_EAUTH},
	    {"FATAL:  database \"\"", "database does not exist", APPHOST_ECONN},
	    {"SSL", "TLS failed", APPHOST_ECONN},
	    {"certificate", "TLS failed", APPHOST_ECONN},
	    {"invalid", "invalid connection parameter", APPHOST_ECONN},
	    {"closed the connection", "server closed the connection",
	     APPHOST_ECONN},
	    {"out of memory", "out of memory", APPHOST_ECONN},
	};
	const char *s = "connection failed (libpq's message withheld: it may "
			"quote the DSN)";
	int code = APPHOST_ECONN;
	char bare[1024];

	unquote(msg != NULL ? msg : "", bare, sizeof(bare));
	for (size_t i = 0; msg != NULL && i < sizeof(table) / sizeof(table[0]);
	     i++) {
		if (strstr(bare, table[i].needle) != NULL) {
			s = table[i].summary;
			code = table[i].code;
			break;
		}
	}
	set_err(err, errlen, s);
	return code;
}
