/*
 * grants.h -- the list of what the application role needs (schema/grants)
 * and the GRANT statements written from it.
 *
 * Pure string code: no I/O, no logging, usable from any thread. The list
 * names objects without a schema; the statements qualify every name with
 * the schema the caller found the migrations in, and quote every
 * identifier, so a role or schema spelled with capitals, spaces or quotes
 * is granted as written.
 */
#ifndef APPHOST_HOST_GRANTS_H
#define APPHOST_HOST_GRANTS_H

#include <stddef.h>

#include <apphost/component.h>

enum apphost_grant_kind {
	APPHOST_GRANT_SCHEMA = 0, /* USAGE on the migrations' schema */
	APPHOST_GRANT_FUNCTION,	  /* EXECUTE on name(args) */
	APPHOST_GRANT_TABLE,	  /* privs on name */
};

/* One line of the list; every string is owned by the list. */
struct apphost_grant {
	int kind;      /* enum apphost_grant_kind */
	char *name;    /* function or table name; NULL for the schema */
	char *args;    /* function: argument types, ", "-separated ("" none) */
	char *privs;   /* "USAGE", "EXECUTE", or "SELECT, UPDATE" ... */
	unsigned line; /* 1-based line of the list it came from */
};

struct apphost_grants {
	struct apphost_grant *v;
	size_t n;
};

/*
 * Parse the list's text into *out (cleared first; free it with
 * apphost_grants_free). Returns 0; APPHOST_EINVAL with "line N: why" in
 * err for a line that is not `schema USAGE`, `function name(types)` or
 * `table name PRIV[, PRIV...]`, an object named twice or a list without
 * the schema line; APPHOST_ENOMEM. On failure *out holds nothing.
 */
int apphost_grants_parse(const char *text, struct apphost_grants *out,
			 char *err, size_t errlen);

/* Free what the list holds and clear it; NULL or empty is a no-op. */
void apphost_grants_free(struct apphost_grants *g);

/*
 * The object of one line as SQL, malloc()ed (the caller frees it), or
 * NULL when out of memory: "schema"."name"(args) for a function,
 * "schema"."name" for a table, "schema" for the schema.
 */
char *apphost_grant_object(const struct apphost_grant *g, const char *schema);

/*
 * Every GRANT statement of the list for `role` in `schema`, one per line
 * ("GRANT USAGE ON SCHEMA "s" TO "r";" first), malloc()ed, or NULL when
 * out of memory.
 */
char *apphost_grants_sql(const struct apphost_grants *g, const char *schema,
			 const char *role);

#endif
