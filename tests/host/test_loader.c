/* test_loader.c -- StrictModes, dlopen and the magic/symbol checks. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "lifecycle.h"
#include "loader.h"

Test(loader, good_loads)
{
	struct apphost_comp *c;
	char err[1024] = "";

	cr_assert_eq(apphost_comp_load(comp_path("good"), &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(apphost_comp_name(c), "good");
	cr_assert_str_eq(apphost_comp_version(c), "1.2.3");
	cr_assert_eq(apphost_comp_state(c), APPHOST_COMP_LOADED);
	cr_assert(apphost_comp_can_export(c));
	cr_assert(apphost_comp_can_import(c));
	cr_assert_eq(apphost_comp_magic(c)->services_size,
		     sizeof(apphost_services));
	apphost_comp_free(c);
	apphost_comp_free(NULL);
}

Test(loader, a_component_built_for_abi_1_0_loads)
{
	struct apphost_comp *c = NULL;
	char err[1024] = "";

	cr_assert_eq(
	    apphost_comp_load(comp_path("abi10"), &c, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(apphost_comp_magic(c)->abi_minor, 0);
	cr_assert_eq(apphost_comp_magic(c)->services_size,
		     APPHOST_SERVICES_SIZE_1_0);
	apphost_comp_free(c);
}

struct refuse_case { /* arrays: each case runs in a fresh process */
	char comp[16];
	char want[48]; /* substring of the message */
};

ParameterizedTestParameters(loader, refused)
{
	static struct refuse_case cases[] = {
	    {"nomagic", "missing symbol apphost_component_magic"},
	    {"badmagic", "magic 0x12345678, host expects 0x41504831"},
	    {"badmajor", "ABI major 2, host supports 1"},
	    {"badminor", "ABI minor 99, host supports up to 1.3"},
	    {"badhiredis", "built against hiredis 1.14, host uses 0.14"},
	    {"badsize", "services table size"},
	    {"nostart", "missing symbol apphost_component_start"},
	    {"undef", "apphost_test_undefined_symbol"},
	};
	return TABLE_PARAMS(struct refuse_case, cases);
}

ParameterizedTest(struct refuse_case *rc, loader, refused)
{
	struct apphost_comp *c = (void *)1;
	char err[1024] = "";
	const char *path = comp_path(rc->comp);

	cr_assert_eq(apphost_comp_load(path, &c, err, sizeof(err)),
		     APPHOST_EINVAL, "%s loaded", rc->comp);
	cr_assert_null(c);
	cr_assert(strncmp(err, path, strlen(path)) == 0,
		  "message does not start with the file: %s", err);
	cr_assert(strstr(err, rc->want) != NULL, "%s: got \"%s\", want \"%s\"",
		  rc->comp, err, rc->want);
}

Test(loader, undef_has_dlerror_text)
{
	struct apphost_comp *c;
	char err[1024] = "";

	cr_assert_eq(
	    apphost_comp_load(comp_path("undef"), &c, err, sizeof(err)),
	    APPHOST_EINVAL);
	cr_assert(strstr(err, "undefined symbol") != NULL, "%s", err);
}

Test(loader, missing_file)
{
	struct apphost_comp *c;
	char err[1024] = "";

	cr_assert_eq(
	    apphost_comp_load("/nonexistent/x.so", &c, err, sizeof(err)),
	    APPHOST_EIO);
	cr_assert(strstr(err, "/nonexistent/x.so: No such file") != NULL, "%s",
		  err);
}

Test(loader, listed_twice_refused)
{
	struct apphost_comp *a, *b;
	char err[1024] = "";

	cr_assert_eq(apphost_comp_load(comp_path("good"), &a, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_comp_load(comp_path("good"), &b, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "already loaded") != NULL, "%s", err);
	apphost_comp_free(a);
}

/* ---- StrictModes ------------------------------------------------------- */

static const char *copy_good(const char *name, mode_t mode)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmp_dir(), name);
	cr_assert_eq(copy_file(comp_path("good"), path, mode), 0);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

Test(strict, copy_with_sane_modes_loads)
{
	struct apphost_comp *c;
	char err[1024] = "";
	const char *p = copy_good("copy.so", 0755);

	cr_assert_eq(apphost_comp_load(p, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(apphost_comp_name(c), "good");
	apphost_comp_free(c);
}

Test(strict, group_writable_refused)
{
	struct apphost_comp *c;
	char err[1024] = "";
	const char *p = copy_good("gw.so", 0775);

	cr_assert_eq(apphost_comp_load(p, &c, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "group-writable") != NULL, "%s", err);
	cr_assert(strstr(err, "0775") != NULL, "%s", err);
	cr_assert(strstr(err, p) != NULL, "%s", err);
}

Test(strict, world_writable_refused)
{
	char err[1024] = "";
	const char *p = copy_good("ww.so", 0757);

	cr_assert_eq(apphost_comp_check_file(p, geteuid(), err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "world-writable") != NULL, "%s", err);
}

Test(strict, foreign_owner_refused)
{
	char err[1024] = "";
	const char *p = copy_good("owner.so", 0755);

	if (geteuid() != 0) {
		/* As a user we cannot give files away: ask as another euid. */
		cr_assert_eq(
		    apphost_comp_check_file(p, geteuid() + 1, err, sizeof(err)),
		    0, "own file of uid %u refused for uid %u: %s", geteuid(),
		    geteuid() + 1, err);
		cr_skip_test("chown needs root");
	}
	cr_assert_eq(chown(p, 12345, 12345), 0);
	cr_assert_eq(apphost_comp_check_file(p, 0, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "owned by uid 12345") != NULL, "%s", err);
}

Test(strict, writable_directory_refused)
{
	char dir[600], path[700], err[1024] = "";

	snprintf(dir, sizeof(dir), "%s/opendir", tmp_dir());
	cr_assert_eq(mkdir(dir, 0777), 0);
	cr_assert_eq(chmod(dir, 0777), 0);
	snprintf(path, sizeof(path), "%s/good.so", dir);
	cr_assert_eq(copy_file(comp_path("good"), path, 0755), 0);
	cr_assert_eq(apphost_comp_check_file(path, geteuid(), err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "directory") != NULL, "%s", err);
	/* Sticky (like /tmp) is fine. */
	cr_assert_eq(chmod(dir, 01777), 0);
	cr_assert_eq(apphost_comp_check_file(path, geteuid(), err, sizeof(err)),
		     0, "%s", err);
}

/* ---- symbol isolation -------------------------------------------------- */

Test(loader, each_helper_calls_its_own)
{
	struct apphost_comp_list l = {0};
	struct apphost_ctx *ctx = test_ctx_new();
	char csv[2048];
	char *log;

	log_capture_start();
	snprintf(csv, sizeof(csv), "%s,%s", comp_path("helper_a"),
		 comp_path("helper_b"));
	cr_assert_eq(apphost_lifecycle_load_all(csv, &l), 0);
	/* init returns EINVAL when helper() is the other one's. */
	cr_assert_eq(apphost_lifecycle_init_all(&l, ctx, 1000), 0);
	log = log_captured();
	cr_assert(strstr(log, "helper_a helper called got=1 want=1") != NULL,
		  "%s", log);
	cr_assert(strstr(log, "helper_b helper called got=2 want=2") != NULL,
		  "%s", log);
	cr_assert_eq(apphost_lifecycle_stop_all(&l, 1000), 0);
	apphost_lifecycle_free_all(&l);
	test_ctx_free(ctx);
	free(log);
}

Test(loader, nm_shows_only_abi_symbols)
{
	const char *nm = getenv("TEST_NM");
	char cmd[4096], line[512];
	FILE *p;
	int n = 0;

	if (nm == NULL || nm[0] == '\0')
		cr_skip_test("nm not found at configure time");
	snprintf(cmd, sizeof(cmd), "'%s' -D --defined-only '%s'", nm,
		 comp_path("good"));
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		char addr[64], type[8], name[256];

		if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3)
			continue;
		cr_assert(strcmp(name, "apphost_component_magic") == 0 ||
			      strcmp(name, "apphost_component_init") == 0 ||
			      strcmp(name, "apphost_component_start") == 0 ||
			      strcmp(name, "apphost_component_stop") == 0 ||
			      strcmp(name, "apphost_component_export") == 0 ||
			      strcmp(name, "apphost_component_import") == 0,
			  "unexpected exported symbol: %s", line);
		n++;
	}
	cr_assert_eq(pclose(p), 0, "%s failed", cmd);
	cr_assert_eq(n, 6, "want 6 ABI symbols, got %d", n);
}

/* ---- one open: the checks and dlopen() see the same file --------------- */

static void mkdir_mode(const char *path, mode_t mode)
{
	cr_assert_eq(mkdir(path, mode), 0, "mkdir %s: %s", path,
		     strerror(errno));
	cr_assert_eq(chmod(path, mode), 0);
}

Test(strict, symlinked_file_refused)
{
	struct apphost_comp *c = (void *)1;
	char link[600], err[1024] = "";
	const char *p = copy_good("target.so", 0755);

	snprintf(link, sizeof(link), "%s/link.so", tmp_dir());
	cr_assert_eq(symlink(p, link), 0);
	cr_assert_eq(apphost_comp_load(link, &c, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert_null(c);
	cr_assert(strstr(err, "symbolic link") != NULL, "%s", err);
	cr_assert(strncmp(err, link, strlen(link)) == 0, "%s", err);
}

Test(strict, symlinked_directory_is_resolved_then_checked)
{
	struct apphost_comp *c;
	char real[600], link[600], path[700], err[1024] = "";

	snprintf(real, sizeof(real), "%s/realdir", tmp_dir());
	mkdir_mode(real, 0755);
	snprintf(path, sizeof(path), "%s/good.so", real);
	cr_assert_eq(copy_file(comp_path("good"), path, 0755), 0);
	snprintf(link, sizeof(link), "%s/linkdir", tmp_dir());
	cr_assert_eq(symlink(real, link), 0);
	snprintf(path, sizeof(path), "%s/good.so", link);
	cr_assert_eq(apphost_comp_load(path, &c, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert(strstr(apphost_comp_realpath(c), "/realdir/good.so") != NULL,
		  "%s", apphost_comp_realpath(c));
	apphost_comp_free(c);
	/* the directory the link resolves to is what must be safe */
	cr_assert_eq(chmod(real, 0777), 0);
	cr_assert_eq(apphost_comp_load(path, &c, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "/realdir") != NULL, "%s", err);
}

Test(strict, writable_ancestor_refused)
{
	char a[600], b[700], path[800], err[1024] = "";

	/* a (world-writable, not sticky) / b (fine) / good.so (fine): whoever
	 * can write a can rename b away and put their own b there */
	snprintf(a, sizeof(a), "%s/anc", tmp_dir());
	mkdir_mode(a, 0777);
	snprintf(b, sizeof(b), "%s/lib", a);
	mkdir_mode(b, 0755);
	snprintf(path, sizeof(path), "%s/good.so", b);
	cr_assert_eq(copy_file(comp_path("good"), path, 0755), 0);
	cr_assert_eq(apphost_comp_check_file(path, geteuid(), err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "directory") != NULL && strstr(err, a) != NULL &&
		      strstr(err, "world-writable") != NULL,
		  "%s", err);
	cr_assert(strstr(err, "lib ") == NULL, "names the wrong one: %s", err);
	/* sticky with our own entry below it, as /tmp */
	cr_assert_eq(chmod(a, 01777), 0);
	cr_assert_eq(apphost_comp_check_file(path, geteuid(), err, sizeof(err)),
		     0, "%s", err);
}

Test(strict, sticky_ancestor_with_foreign_entry_refused)
{
	char a[600], b[700], path[800], err[1024] = "";

	if (geteuid() != 0)
		cr_skip_test("chown needs root");
	snprintf(a, sizeof(a), "%s/sticky", tmp_dir());
	mkdir_mode(a, 01777);
	snprintf(b, sizeof(b), "%s/theirs", a);
	mkdir_mode(b, 0755);
	cr_assert_eq(chown(b, 12345, 12345), 0);
	snprintf(path, sizeof(path), "%s/good.so", b);
	cr_assert_eq(copy_file(comp_path("good"), path, 0755), 0);
	cr_assert_eq(apphost_comp_check_file(path, 0, err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "theirs") != NULL &&
		      strstr(err, "owned by uid 12345") != NULL,
		  "%s", err);
}

Test(strict, fifo_refused_without_blocking)
{
	char path[600], err[1024] = "";

	snprintf(path, sizeof(path), "%s/fifo.so", tmp_dir());
	cr_assert_eq(mkfifo(path, 0644), 0);
	cr_assert_eq(apphost_comp_check_file(path, geteuid(), err, sizeof(err)),
		     APPHOST_EINVAL);
	cr_assert(strstr(err, "not a regular file") != NULL, "%s", err);
}

/*
 * The name is swapped between a checked file and a world-writable one
 * (what a user who can write the file's directory does) while it is
 * loaded again and again: every load is refused or loads the checked
 * file, never the other. Checking the path and then dlopen()ing the path
 * again loads the other one in a good share of the tries.
 */
Test(strict, file_swapped_during_load_never_loads_the_other)
{
	struct swapper s = {0};
	char base[500], path[700], err[1024];
	int loaded = 0, refused = 0, swaps;

	snprintf(base, sizeof(base), "%s/race", tmp_dir());
	mkdir_mode(base, 0755);
	snprintf(s.a, sizeof(s.a), "%s/good.so", base);
	snprintf(s.b, sizeof(s.b), "%s/evil.so", base);
	cr_assert_eq(copy_file(comp_path("good"), s.a, 0755), 0);
	cr_assert_eq(copy_file(comp_path("helper_a"), s.b, 0755), 0);
	cr_assert_eq(chmod(s.b, 0777), 0);
	snprintf(path, sizeof(path), "%s", s.a);
	swapper_start(&s);
	for (int i = 0; i < 5000; i++) {
		struct apphost_comp *c = NULL;

		if (apphost_comp_load(path, &c, err, sizeof(err)) != 0) {
			refused++;
			continue;
		}
		loaded++;
		cr_expect_str_eq(apphost_comp_name(c), "good",
				 "the world-writable file was loaded");
		apphost_comp_free(c);
	}
	swaps = swapper_stop(&s);
	cr_assert_gt(swaps, 0, "the names never swapped");
	cr_log_info("%d loaded, %d refused, %d swaps", loaded, refused, swaps);
}

/* ---- two components, one name ----------------------------------------- */

Test(loader, same_name_twice_refused_naming_both)
{
	struct apphost_comp_list l = {0};
	char a[600], b[600], csv[1300];
	char *log;

	log_capture_start();
	snprintf(a, sizeof(a), "%s/one.so", tmp_dir());
	snprintf(b, sizeof(b), "%s/two.so", tmp_dir());
	cr_assert_eq(copy_file(comp_path("good"), a, 0755), 0);
	cr_assert_eq(copy_file(comp_path("good"), b, 0755), 0);
	snprintf(csv, sizeof(csv), "%s,%s", a, b);
	cr_assert_eq(apphost_lifecycle_load_all(csv, &l), APPHOST_EINVAL);
	log = log_captured();
	cr_assert(strstr(log, "component name good is already loaded") !=
			  NULL &&
		      strstr(log, a) != NULL && strstr(log, b) != NULL,
		  "%s", log);
	free(log);
}
