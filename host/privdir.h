/*
 * privdir.h -- a private directory for the host's own copies of files,
 * and the sweep of those that killed hosts left behind.
 *
 * The directory is made with mkdtemp (mode 0700) under the first usable
 * base of $XDG_RUNTIME_DIR, $TMPDIR, /tmp and /var/tmp: an absolute
 * directory we may write to, on a mount without noexec (the copies are
 * dlopen()ed). Its name is apphost-hotswap-<pid>-XXXXXX, so that before
 * making one, directories of that name whose pid no longer runs and that
 * belong to this user are emptied and removed. The sweep opens each
 * candidate without following a symlink and only unlinks entries of the
 * directory it checked: a name swapped for a symlink or another directory
 * between the check and the removal cannot redirect it (the base may be
 * a sticky /tmp others write to).
 *
 * Not thread-safe against itself; the host calls it from the main thread.
 */
#ifndef APPHOST_HOST_PRIVDIR_H
#define APPHOST_HOST_PRIVDIR_H

#include <stddef.h>

/*
 * Sweep, then make the private directory; its path goes into dir (cap
 * bytes, PATH_MAX will do). Returns 0, or APPHOST_EIO with the reason in
 * err when no base would do. The caller removes it with
 * apphost_privdir_remove.
 */
int apphost_privdir_new(char *dir, size_t cap, char *err, size_t errlen);

/* Remove every file in `dir`, then `dir` (best effort, silent). */
void apphost_privdir_remove(const char *dir);

#endif
