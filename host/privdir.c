/* privdir.c -- see privdir.h. */
#include "privdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <apphost/component.h>

#define DIR_PREFIX "apphost-hotswap-" /* + pid + "-XXXXXX" */

/* Remove every entry of the directory open on dfd (closed here). */
static void empty_dir(int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

void apphost_privdir_remove(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		empty_dir(fd);
	rmdir(dir);
}

/*
 * Remove private directories of hosts that no longer run (killed). Each
 * candidate is opened without following a symlink and checked on that
 * descriptor, and only entries of that very directory are unlinked: a
 * name swapped for a symlink or another directory between the check and
 * the removal cannot redirect it (base may be a sticky /tmp).
 */
static void sweep(const char *base)
{
	int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = bfd >= 0 ? fdopendir(bfd) : NULL;
	struct dirent *de;
	size_t plen = strlen(DIR_PREFIX);

	if (d == NULL) {
		if (bfd >= 0)
			close(bfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		long pid;
		char *end;
		int fd;

		if (strncmp(de->d_name, DIR_PREFIX, plen) != 0)
			continue;
		pid = strtol(de->d_name + plen, &end, 10);
		if (pid <= 0 || *end != '-' || pid == (long)getpid() ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		fd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || st.st_uid != geteuid()) {
			close(fd);
			continue;
		}
		empty_dir(fd);
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* A base for the private directory: a directory we may exec from. */
static bool usable_base(const char *base)
{
	struct statvfs vfs;
	struct stat st;

	return base != NULL && base[0] == '/' && stat(base, &st) == 0 &&
	       S_ISDIR(st.st_mode) && access(base, W_OK | X_OK) == 0 &&
	       statvfs(base, &vfs) == 0 && !(vfs.f_flag & ST_NOEXEC);
}

int apphost_privdir_new(char *dir, size_t cap, char *err, size_t errlen)
{
	const char *bases[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"),
			       "/tmp", "/var/tmp"};

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (!usable_base(bases[i]))
			continue;
		sweep(bases[i]);
		snprintf(dir, cap, "%s/" DIR_PREFIX "%ld-XXXXXX", bases[i],
			 (long)getpid());
		if (mkdtemp(dir) != NULL)
			return 0;
	}
	snprintf(err, errlen,
		 "no directory for private component copies: tried "
		 "$XDG_RUNTIME_DIR, $TMPDIR, /tmp, /var/tmp (need a writable "
		 "directory on a mount without noexec)");
	return APPHOST_EIO;
}
