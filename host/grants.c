/* grants.c -- see grants.h. */
#include "grants.h"

#include "strbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Table privileges PostgreSQL knows; anything else is a typo. */
static const char *const table_privs[] = {
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
};

static void put(struct apphost_strbuf *b, const char *s)
{
	apphost_strbuf_put(b, s, strlen(s));
}

/* s as a quoted identifier: always quoted, '"' doubled. */
static void put_ident(struct apphost_strbuf *b, const char *s)
{
	put(b, "\"");
	for (const char *q; (q = strchr(s, '"')) != NULL; s = q + 1) {
		apphost_strbuf_put(b, s, (size_t)(q - s) + 1);
		put(b, "\"");
	}
	put(b, s);
	put(b, "\"");
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static const char *skip_space(const char *s, const char *end)
{
	while (s < end && is_space(*s))
		s++;
	return s;
}

/*
 * A stored (lower-case, unquoted) identifier at *s: its length, 0 when
 * there is none. The list names objects as the migrations create them
 * unquoted, so capitals would name something else once quoted.
 */
static size_t ident_len(const char *s, const char *end)
{
	size_t n = 0;

	if (s >= end || !((*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	while (s + n < end && ((s[n] >= 'a' && s[n] <= 'z') ||
			       (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
		n++;
	return n;
}

/*
 * The items of a comma-separated list between s and end, each trimmed,
 * joined with ", " into b. `item_ok` judges one item. false when an item
 * is empty or refused.
 */
static bool put_list(struct apphost_strbuf *b, const char *s, const char *end,
		     bool (*item_ok)(const char *, size_t))
{
	bool first = true;

	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma != NULL ? comma : end;
		const char *a = skip_space(s, e);

		while (e > a && is_space(e[-1]))
			e--;
		if (e == a || !item_ok(a, (size_t)(e - a)))
			return false;
		if (!first)
			put(b, ", ");
		apphost_strbuf_put(b, a, (size_t)(e - a));
		first = false;
		if (comma == NULL)
			return true;
		s = comma + 1;
	}
}

/* A type as a function signature spells it: words, spaces, [] only. */
static bool type_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == ' ' || s[i] == '[' || s[i] == ']'))
			return false;
	return true;
}

static bool table_priv_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(table_privs) / sizeof(*table_privs); i++)
		if (strlen(table_privs[i]) == n &&
		    memcmp(table_privs[i], s, n) == 0)
			return true;
	return false;
}

static bool word_is(const char *s, const char *end, const char *w,
		    const char **after)
{
	size_t n = strlen(w);

	if ((size_t)(end - s) < n || memcmp(s, w, n) != 0 ||
	    (s + n < end && !is_space(s[n])))
		return false;
	*after = s + n;
	return true;
}

static int fail(char *err, size_t errlen, unsigned line, const char *why)
{
	if (errlen > 0)
		snprintf(err, errlen, "line %u: %s", line, why);
	return APPHOST_EINVAL;
}

/* Parse one non-empty line into *g; returns a reason, or NULL. */
static const char *parse_line(const char *s, const char *end,
			      struct apphost_grant *g)
{
	struct apphost_strbuf b = {0};
	const char *p;
	size_t n;

	if (word_is(s, end, "schema", &p)) {
		p = skip_space(p, end);
		if (!word_is(p, end, "USAGE", &p) || skip_space(p, end) != end)
			return "a schema line says exactly \"schema USAGE\"";
		g->kind = APPHOST_GRANT_SCHEMA;
		g->privs = strdup("USAGE");
		return g->privs != NULL ? NULL : "out of memory";
	}
	if (word_is(s, end, "function", &p)) {
		const char *open, *close;

		p = skip_space(p, end);
		n = ident_len(p, end);
		open = skip_space(p + n, end);
		close = end;
		while (close > open && is_space(close[-1]))
			close--;
		if (n == 0 || open >= end || *open != '(' || close[-1] != ')')
			return "expected \"function name(argument types)\"";
		g->kind = APPHOST_GRANT_FUNCTION;
		g->name = strndup(p, n);
		if (skip_space(open + 1, close - 1) == close - 1)
			put(&b, ""); /* no arguments */
		else if (!put_list(&b, open + 1, close - 1, type_ok)) {
			free(apphost_strbuf_take(&b, NULL));
			return "an argument type is empty or not a plain "
			       "type name";
		}
		g->args = apphost_strbuf_take(&b, NULL);
		g->privs = strdup("EXECUTE");
		return g->name && g->args && g->privs ? NULL : "out of memory";
	}
	if (word_is(s, end, "table", &p)) {
		p = skip_space(p, end);
		n = ident_len(p, end);
		if (n == 0 || p + n >= end || !is_space(p[n]))
			return "expected \"table name PRIVILEGE[, ...]\"";
		g->kind = APPHOST_GRANT_TABLE;
		g->name = strndup(p, n);
		if (!put_list(&b, p + n, end, table_priv_ok)) {
			free(apphost_strbuf_take(&b, NULL));
			return "a table privilege is empty or unknown (SELECT, "
			       "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, "
			       "TRIGGER)";
		}
		g->privs = apphost_strbuf_take(&b, NULL);
		return g->name && g->privs ? NULL : "out of memory";
	}
	return "expected \"schema\", \"function\" or \"table\"";
}

static void grant_clear(struct apphost_grant *g)
{
	free(g->name);
	free(g->args);
	free(g->privs);
	*g = (struct apphost_grant){0};
}

static bool same_object(const struct apphost_grant *a,
			const struct apphost_grant *b)
{
	return a->kind == b->kind && (a->kind == APPHOST_GRANT_SCHEMA ||
				      (strcmp(a->name, b->name) == 0 &&
				       (a->kind != APPHOST_GRANT_FUNCTION ||
					strcmp(a->args, b->args) == 0)));
}

int apphost_grants_parse(const char *text, struct apphost_grants *out,
			 char *err, size_t errlen)
{
	struct apphost_grants g = {0};
	bool schema = false;
	unsigned line = 0;
	int rc = 0;

	*out = (struct apphost_grants){0};
	for (const char *s = text; rc == 0 && *s != '\0';) {
		const char *nl = strchr(s, '\n');
		const char *end = nl != NULL ? nl : s + strlen(s);
		const char *hash = memchr(s, '#', (size_t)(end - s));
		const char *e = hash != NULL ? hash : end;
		struct apphost_grant one = {.line = ++line};
		const char *why;

		s = skip_space(s, e);
		while (e > s && is_space(e[-1]))
			e--;
		if (s < e) {
			struct apphost_grant *nv =
			    realloc(g.v, (g.n + 1) * sizeof(*g.v));

			if (nv == NULL) {
				rc = APPHOST_ENOMEM;
				break;
			}
			g.v = nv;
			why = parse_line(s, e, &one);
			for (size_t i = 0; why == NULL && i < g.n; i++)
				if (same_object(&g.v[i], &one))
					why = "this object is named twice";
			if (why != NULL) {
				rc = strcmp(why, "out of memory") == 0
					 ? APPHOST_ENOMEM
					 : fail(err, errlen, line, why);
				grant_clear(&one);
				break;
			}
			schema |= one.kind == APPHOST_GRANT_SCHEMA;
			g.v[g.n++] = one;
		}
		s = nl != NULL ? nl + 1 : end;
	}
	if (rc == 0 && !schema)
		rc = fail(err, errlen, line,
			  "no \"schema USAGE\" line: without it nothing "
			  "else can be reached");
	if (rc != 0) {
		apphost_grants_free(&g);
		return rc;
	}
	*out = g;
	return 0;
}

void apphost_grants_free(struct apphost_grants *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n; i++)
		grant_clear(&g->v[i]);
	free(g->v);
	*g = (struct apphost_grants){0};
}

static void put_object(struct apphost_strbuf *b, const struct apphost_grant *g,
		       const char *schema)
{
	put_ident(b, schema);
	if (g->kind == APPHOST_GRANT_SCHEMA)
		return;
	put(b, ".");
	put_ident(b, g->name);
	if (g->kind == APPHOST_GRANT_FUNCTION) {
		put(b, "(");
		put(b, g->args);
		put(b, ")");
	}
}

char *apphost_grant_object(const struct apphost_grant *g, const char *schema)
{
	struct apphost_strbuf b = {0};

	put_object(&b, g, schema);
	return apphost_strbuf_take(&b, NULL);
}

static void put_grant(struct apphost_strbuf *b, const struct apphost_grant *g,
		      const char *schema, const char *role)
{
	static const char *const on[] = {
	    [APPHOST_GRANT_SCHEMA] = "SCHEMA",
	    [APPHOST_GRANT_FUNCTION] = "FUNCTION",
	    [APPHOST_GRANT_TABLE] = "TABLE",
	};

	put(b, "GRANT ");
	put(b, g->privs);
	put(b, " ON ");
	put(b, on[g->kind]);
	put(b, " ");
	put_object(b, g, schema);
	put(b, " TO ");
	put_ident(b, role);
	put(b, ";\n");
}

char *apphost_grants_sql(const struct apphost_grants *g, const char *schema,
			 const char *role)
{
	struct apphost_strbuf b = {0};

	/* USAGE first: the other grants name objects inside the schema. */
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].kind == APPHOST_GRANT_SCHEMA)
			put_grant(&b, &g->v[i], schema, role);
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].kind != APPHOST_GRANT_SCHEMA)
			put_grant(&b, &g->v[i], schema, role);
	if (b.p == NULL)
		put(&b, "");
	return apphost_strbuf_take(&b, NULL);
}
