/* test_sweep.c -- hot swap's sweep of private directories left by killed
 * hosts: what it removes, and that a name swapped for a symlink is never
 * followed (the base may be a sticky /tmp others write to). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "hotswap.h"

static char base[600], victim[600], keep[700];
static long dead_pid;

/* A private base (hot swap tries $XDG_RUNTIME_DIR first), a victim
 * directory with a file, and the pid of a process that has exited. */
static void setup(void)
{
	pid_t pid;
	int fd;

	snprintf(base, sizeof(base), "%s/base", tmp_dir());
	snprintf(victim, sizeof(victim), "%s/victim", tmp_dir());
	snprintf(keep, sizeof(keep), "%s/keep.so", victim);
	cr_assert_eq(mkdir(base, 0700), 0);
	cr_assert_eq(mkdir(victim, 0700), 0);
	fd = open(keep, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", base, 1), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	dead_pid = (long)pid;
}

TestSuite(sweep, .init = setup);

static void sweep_once(void)
{
	struct apphost_hotswap *hs;
	char err[256];

	cr_assert_eq(apphost_hotswap_new(&hs, err, sizeof(err)), 0, "%s", err);
	cr_assert(strncmp(apphost_hotswap_dir(hs), base, strlen(base)) == 0,
		  "private dir %s not under %s", apphost_hotswap_dir(hs), base);
	apphost_hotswap_free(hs);
}

Test(sweep, stale_directory_removed_symlink_left_alone)
{
	char stale[700], file[800], link[700];
	struct stat st;
	int fd;

	snprintf(stale, sizeof(stale), "%s/apphost-hotswap-%ld-aaaaaa", base,
		 dead_pid);
	snprintf(file, sizeof(file), "%s/1-x.so", stale);
	snprintf(link, sizeof(link), "%s/apphost-hotswap-%ld-bbbbbb", base,
		 dead_pid);
	cr_assert_eq(mkdir(stale, 0700), 0);
	fd = open(file, O_WRONLY | O_CREAT, 0500);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(symlink(victim, link), 0);

	sweep_once();
	cr_assert_eq(lstat(stale, &st), -1, "stale directory kept");
	cr_assert_eq(lstat(link, &st), 0, "the symlink itself was removed");
	cr_assert_eq(stat(keep, &st), 0, "the symlink was followed");
}

/* Checking the name (lstat) and then opening the name (opendir) lets a
 * symlink swapped in between send the sweep into the victim. */
Test(sweep, name_swapped_for_a_symlink_mid_sweep_is_not_followed)
{
	/* The name flips between a stale-looking directory (made again once
	 * swept) and a symlink to the victim, kept under "spare". */
	struct swapper f = {.redo_dir = true};
	struct stat st;

	snprintf(f.a, sizeof(f.a), "%s/apphost-hotswap-%ld-cccccc", base,
		 dead_pid);
	snprintf(f.b, sizeof(f.b), "%s/spare", base);
	cr_assert_eq(symlink(victim, f.b), 0);
	swapper_start(&f);
	for (int i = 0; i < 3000 && stat(keep, &st) == 0; i++)
		sweep_once();
	cr_assert_gt(swapper_stop(&f), 0, "the names never swapped");
	cr_assert_eq(stat(keep, &st), 0,
		     "the sweep followed a symlink into another directory");
}
