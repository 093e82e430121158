/*
 * fuzz_dsn.c -- libFuzzer harness for the PostgreSQL DSN redactor
 * (host/dsn.c), checked against libpq's own parser.
 *
 * The input, cut at its first NUL, is a DSN. Contract checks abort:
 *   - a DSN PQconninfoParse accepts is either shown (rc 0) or withheld
 *     (APPHOST_EINVAL and exactly APPHOST_DSN_UNPARSABLE); one it refuses
 *     is always withheld;
 *   - a refusal's reason is one of the redactor's fixed phrases;
 *   - no password or sslpassword libpq parsed survives in the text shown,
 *     unless it also occurs in an option that is shown (password "db"
 *     with host "db", sslpassword "dbname"), or is short or made of the
 * syntax's characters (password "=" is in every "key=value");
 *   - the text shown parses back with PQconninfoParse, holds no secret
 *     option, and keeps every other option libpq parsed with its value
 *     (values the generic redactor masked excepted).
 * apphost_dsn_error_summary runs on the input as a libpq message too (a
 * non-empty fixed phrase, whatever the bytes).
 */
#include "dsn.h"
#include "url.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_dsn: contract broken: %s\n", what);
		abort();
	}
}

static bool is_secret(const PQconninfoOption *o)
{
	return (o->dispchar != NULL && o->dispchar[0] == '*') ||
	       strcmp(o->keyword, "password") == 0 ||
	       strcmp(o->keyword, "sslpassword") == 0;
}

/* Does `needle` occur in what is shown of a non-secret option of opts:
 * its keyword, its value, or its value as the generic redactor masks it? */
static bool in_shown_option(const PQconninfoOption *opts, const char *needle)
{
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		char *red;
		bool in;

		if (o->val == NULL || is_secret(o))
			continue;
		if (strstr(o->keyword, needle) != NULL ||
		    strstr(o->val, needle) != NULL)
			return true;
		red = apphost_redact(o->val);
		in = red != NULL && strstr(red, needle) != NULL;
		free(red);
		if (in)
			return true;
	}
	return false;
}

static const char *value_of(const PQconninfoOption *opts, const char *kw)
{
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, kw) == 0)
			return o->val;
	return NULL;
}

static void check_shown(const PQconninfoOption *opts, const char *shown)
{
	char *msg = NULL;
	PQconninfoOption *back = PQconninfoParse(shown, &msg);

	PQfreemem(msg);
	check(back != NULL, "the text shown does not parse back");
	for (const PQconninfoOption *o = back; o->keyword != NULL; o++)
		check(o->val == NULL || !is_secret(o),
		      "the text shown holds a secret option");
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		const char *v;
		char *red;

		if (o->val == NULL || is_secret(o))
			continue;
		red = apphost_redact(o->val);
		v = value_of(back, o->keyword);
		if (red != NULL && strcmp(red, o->val) == 0)
			check(v != NULL && strcmp(v, o->val) == 0,
			      "an option lost or changed in the text shown");
		free(red);
	}
	PQconninfoFree(back);
}

/*
 * Is err one of the redactor's fixed reasons? They are collected once
 * from one DSN of each kind it refuses: a reason holding anything of its
 * input would differ between inputs of one kind.
 */
static bool fixed_reason(const char *err)
{
	static const char *const kinds[] = {"host=x junk",
					    "postgresql://a:b@c@d/e", "port=n",
					    "postgresql://h/d%40x"};
	static char reasons[4][256];
	static bool ready;

	if (!ready) {
		for (size_t i = 0; i < 4; i++) {
			char *shown = NULL;

			(void)apphost_dsn_redact(kinds[i], &shown, reasons[i],
						 sizeof(reasons[i]));
			free(shown);
		}
		ready = true;
	}
	for (size_t i = 0; i < 4; i++)
		if (strcmp(err, reasons[i]) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *dsn = malloc(size + 1), *shown = NULL, *msg = NULL;
	char err[256] = "", sum[128];
	PQconninfoOption *opts;
	int rc;

	if (dsn == NULL)
		return 0;
	memcpy(dsn, data, size);
	dsn[size] = '\0';
	opts = PQconninfoParse(dsn, &msg);
	PQfreemem(msg);
	rc = apphost_dsn_redact(dsn, &shown, err, sizeof(err));
	if (rc == APPHOST_ENOMEM)
		goto out;
	check(shown != NULL, "no text to show");
	check(rc == 0 || rc == APPHOST_EINVAL, "unexpected return code");
	if (rc < 0) {
		check(strcmp(shown, APPHOST_DSN_UNPARSABLE) == 0,
		      "a refused DSN is shown");
		check(err[0] != '\0', "refused without a reason");
		check(fixed_reason(err), "the reason quotes the DSN");
	} else {
		check(opts != NULL, "a DSN libpq refuses is shown");
	}
	for (const PQconninfoOption *o = opts; o != NULL && o->keyword != NULL;
	     o++) {
		if (o->val == NULL || !is_secret(o) || o->val[0] == '\0')
			continue;
		/* A short one, or one with the syntax's own characters, may
		 * occur by chance across "key=value" boundaries; the parse-
		 * back check below covers those exactly. */
		if (strlen(o->val) >= 6 && strpbrk(o->val, "= '\\") == NULL &&
		    !in_shown_option(opts, o->val) &&
		    strstr(APPHOST_DSN_UNPARSABLE, o->val) == NULL)
			check(strstr(shown, o->val) == NULL,
			      "a password survives in the text shown");
	}
	if (rc == 0)
		check_shown(opts, shown);
	apphost_dsn_error_summary(dsn, sum, sizeof(sum));
	check(sum[0] != '\0', "an empty summary");
out:
	PQconninfoFree(opts);
	free(shown);
	free(dsn);
	return 0;
}
