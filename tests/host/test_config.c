/* test_config.c -- environment over --config file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "helpers.h"

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp_dir(), name);
	f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int warnings;
static void count_warn(const char *text)
{
	(void)text;
	warnings++;
}

Test(config, file_then_env_wins)
{
	struct apphost_config *cfg;
	char err[256] = "";
	const char *path = write_file("a.conf", "# comment\n"
						"\n"
						"   TEST_CFG_A = from file  \n"
						"TEST_CFG_B=b=c=d\n"
						"  # indented comment\n"
						"TEST_CFG_Q=\"quoted value\"\n"
						"TEST_CFG_EMPTY=\n"
						"TEST_CFG_HASH=pa#ss\n"
						"TEST_CFG_DUP=1\n"
						"TEST_CFG_DUP=2\n");

	setenv("TEST_CFG_B", "from env", 1);
	cr_assert_eq(apphost_config_new(&cfg), 0);
	cr_assert_eq(
	    apphost_config_load_file(cfg, path, err, sizeof(err), NULL), 0,
	    "%s", err);
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_A"), "from file");
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_B"), "from env");
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_Q"), "quoted value");
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_EMPTY"), "");
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_HASH"), "pa#ss");
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_DUP"), "2");
	cr_assert_null(apphost_config_get(cfg, "TEST_CFG_UNSET"));
	/* Strings are the config's own: a later setenv changes nothing. */
	setenv("TEST_CFG_B", "changed", 1);
	cr_assert_str_eq(apphost_config_get(cfg, "TEST_CFG_B"), "from env");
	apphost_config_free(cfg);
	apphost_config_free(NULL);
}

Test(config, bad_line_names_file_and_line)
{
	struct apphost_config *cfg;
	char err[512] = "";
	const char *path =
	    write_file("bad.conf", "# ok\nA=1\nthis is not a pair\n");

	cr_assert_eq(apphost_config_new(&cfg), 0);
	cr_assert_eq(
	    apphost_config_load_file(cfg, path, err, sizeof(err), NULL),
	    APPHOST_EINVAL);
	cr_assert(strstr(err, "bad.conf:3") != NULL, "err: %s", err);
	cr_assert(strstr(err, "KEY=VALUE") != NULL, "err: %s", err);
	/* Nothing from the failed file is kept. */
	cr_assert_null(apphost_config_get(cfg, "A"));
	apphost_config_free(cfg);
}

Test(config, bad_key)
{
	struct apphost_config *cfg;
	char err[512] = "";
	const char *path = write_file("badkey.conf", "1BAD=x\n");

	cr_assert_eq(apphost_config_new(&cfg), 0);
	cr_assert_eq(
	    apphost_config_load_file(cfg, path, err, sizeof(err), NULL),
	    APPHOST_EINVAL);
	cr_assert(strstr(err, "badkey.conf:1") != NULL, "err: %s", err);
	apphost_config_free(cfg);
}

Test(config, missing_file)
{
	struct apphost_config *cfg;
	char err[512] = "";

	cr_assert_eq(apphost_config_new(&cfg), 0);
	cr_assert_eq(apphost_config_load_file(cfg, "/nonexistent/x.conf", err,
					      sizeof(err), NULL),
		     APPHOST_EIO);
	cr_assert(strstr(err, "/nonexistent/x.conf") != NULL, "err: %s", err);
	apphost_config_free(cfg);
}

Test(config, unknown_apphost_key_warns)
{
	struct apphost_config *cfg;
	char err[512] = "";
	const char *path = write_file("typo.conf", "APPHOST_LOG_LEVLE=debug\n"
						   "APPHOST_LOG_LEVEL=debug\n"
						   "HEALTH_EVENTS_X=1\n");

	cr_assert_eq(apphost_config_new(&cfg), 0);
	cr_assert_eq(
	    apphost_config_load_file(cfg, path, err, sizeof(err), count_warn),
	    0, "%s", err);
	cr_assert_eq(warnings, 1);
	apphost_config_free(cfg);
}

Test(config, numbers)
{
	struct apphost_config *cfg;
	char err[256] = "";
	uint32_t v;

	setenv("TEST_CFG_N", " 250 ", 1);
	setenv("TEST_CFG_BAD", "12abc", 1);
	setenv("TEST_CFG_BIG", "99999999999999999999", 1);
	cr_assert_eq(apphost_config_new(&cfg), 0);
	cr_assert_eq(apphost_config_get_u32(cfg, "TEST_CFG_N", 7, 1, 1000, &v,
					    err, sizeof(err)),
		     0);
	cr_assert_eq(v, 250);
	cr_assert_eq(apphost_config_get_u32(cfg, "TEST_CFG_UNSET", 7, 1, 1000,
					    &v, err, sizeof(err)),
		     0);
	cr_assert_eq(v, 7);
	cr_assert_eq(apphost_config_get_u32(cfg, "TEST_CFG_BAD", 7, 1, 1000, &v,
					    err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "TEST_CFG_BAD=12abc") != NULL, "err: %s", err);
	cr_assert_eq(apphost_config_get_u32(cfg, "TEST_CFG_BIG", 7, 1, 1000, &v,
					    err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert_eq(apphost_config_get_u32(cfg, "TEST_CFG_N", 7, 1, 100, &v,
					    err, sizeof(err)),
		     APPHOST_EINVAL);
	apphost_config_free(cfg);
}
