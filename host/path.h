/*
 * path.h -- a path's directory and file parts, as the loader's checks and
 * the directory watcher both need them. No I/O. Any thread.
 */
#ifndef APPHOST_HOST_PATH_H
#define APPHOST_HOST_PATH_H

/*
 * Split `path` into its directory ("." without a slash, "/" for a file
 * in the root) and its last component, both malloc()ed for the caller to
 * free. Returns 0, or APPHOST_ENOMEM with *dir and *base NULL.
 */
int apphost_path_split(const char *path, char **dir, char **base);

#endif
