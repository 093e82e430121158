/* test_grants.c -- schema/grants: parsing and the GRANT statements (no I/O). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "grants.h"
#include "helpers.h"

Test(grants, statements_are_qualified_and_quoted)
{
	static const char list[] =
	    "# comment\n"
	    "table runtime_records SELECT,UPDATE   # trailing comment\n"
	    "\n"
	    "  function f_one( text [] ,bigint )\n"
	    "function f_none()\n"
	    "schema USAGE\n";
	struct apphost_grants g;
	char err[128] = "";
	char *sql;

	cr_assert_eq(apphost_grants_parse(list, &g, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(g.n, 4);
	cr_expect_eq(g.v[1].line, 4);
	sql = apphost_grants_sql(&g, "my \"s\"", "app \"x\"");
	cr_assert_str_eq(
	    sql,
	    "GRANT USAGE ON SCHEMA \"my \"\"s\"\"\" TO \"app \"\"x\"\"\";\n"
	    "GRANT SELECT, UPDATE ON TABLE \"my \"\"s\"\"\".\"runtime_records\""
	    " TO \"app \"\"x\"\"\";\n"
	    "GRANT EXECUTE ON FUNCTION \"my \"\"s\"\"\".\"f_one\"(text [], "
	    "bigint) TO \"app \"\"x\"\"\";\n"
	    "GRANT EXECUTE ON FUNCTION \"my \"\"s\"\"\".\"f_none\"() TO "
	    "\"app \"\"x\"\"\";\n");
	free(sql);
	apphost_grants_free(&g);
	apphost_grants_free(&g); /* cleared: a second free is a no-op */
}

/* The list the schema ships parses. */
Test(grants, shipped_list_parses)
{
	char path[4096], err[128] = "";
	struct apphost_grants g;
	char *text;

	snprintf(path, sizeof(path), "%s/schema/grants", SOURCE_ROOT);
	text = read_text(path);
	cr_assert(text != NULL, "cannot read %s", path);
	cr_assert_eq(apphost_grants_parse(text, &g, err, sizeof(err)), 0,
		     "%s: %s", path, err);
	cr_expect_gt(g.n, 1);
	apphost_grants_free(&g);
	free(text);
}

struct bad_case {
	char text[80];
	char err[48]; /* the start of the reason */
};

ParameterizedTestParameters(grants, refused)
{
	static struct bad_case cases[] = {
	    {"schema USAGE\ntable t SELECT, DROP\n", "line 2: a table privil"},
	    {"schema USAGE\ntable t\n", "line 2: expected \"table"},
	    {"schema USAGE\ntable T SELECT\n", "line 2: expected \"table"},
	    {"schema USAGE\nfunction f(text\n", "line 2: expected \"funct"},
	    {"schema USAGE\nfunction f(text,)\n", "line 2: an argument type"},
	    {"schema USAGE\nfunction f(text); x()\n", "line 2: an argument"},
	    {"schema CREATE\n", "line 1: a schema line"},
	    {"schema USAGE\nview v\n", "line 2: expected \"schema\""},
	    {"table t SELECT\n", "line 1: no \"schema USAGE\""},
	    {"schema USAGE\ntable t SELECT\ntable t UPDATE\n",
	     "line 3: this object is named twice"},
	    {"schema USAGE\nschema USAGE\n", "line 2: this object is named"},
	};
	return TABLE_PARAMS(struct bad_case, cases);
}

ParameterizedTest(struct bad_case *c, grants, refused)
{
	struct apphost_grants g;
	char err[160] = "";

	cr_assert_eq(apphost_grants_parse(c->text, &g, err, sizeof(err)),
		     APPHOST_EINVAL, "accepted: %s", c->text);
	cr_expect_eq(strncmp(err, c->err, strlen(c->err)), 0,
		     "reason \"%s\", want \"%s...\"", err, c->err);
	cr_expect_eq(g.n, 0);
}
