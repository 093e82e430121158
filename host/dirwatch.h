/*
 * dirwatch.h -- watch files by their directories, with a debounce.
 *
 * A file is watched through the directory that holds it (uv_fs_event on
 * the directory, filtered by file name), not through the file itself: a
 * watch on the file would follow the old inode when a linker or
 * `install` renames a new file over it, and die with it when it is
 * unlinked. The directory sees an in-place write (IN_MODIFY), a rename
 * over the file, an unlink + create, and a file that is briefly missing.
 * When the path goes through a symlinked directory, the resolved
 * directory is watched too (the loader refuses a symlinked file). Each
 * directory is watched once, however many files are added in it.
 *
 * Every event for a file restarts its debounce timer; when the file has
 * been quiet for the debounce time, `changed` is called once with the id
 * it was added under. A build that writes a file in several steps thus
 * gives one call, after its last write.
 *
 * The object does not log: a directory that cannot be watched is
 * reported through `failed`, and the caller decides what that means.
 *
 * Threads: everything here, callbacks included, runs on the thread of
 * the loop given to apphost_dirwatch_new.
 */
#ifndef APPHOST_HOST_DIRWATCH_H
#define APPHOST_HOST_DIRWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct apphost_dirwatch;

struct apphost_dirwatch_cb {
	/* File `id` changed and has been quiet for the debounce time. */
	void (*changed)(void *arg, size_t id);
	/*
	 * Directory `dir` is not watched: uv_fs_event_start refused it
	 * (`at_add`, the watch never started) or a started watch reported
	 * the error `uv_err` (a libuv code, for uv_strerror). Files in it
	 * still get events through their other directory, if any.
	 */
	void (*failed)(void *arg, const char *dir, int uv_err, bool at_add);
	void *arg;
};

/*
 * A watcher on `loop` that calls cb (copied) `debounce_ms` after the last
 * event of a file. Returns 0 and *out (free with apphost_dirwatch_free),
 * or APPHOST_ENOMEM. Loop thread.
 */
int apphost_dirwatch_new(struct apphost_dirwatch **out, uv_loop_t *loop,
			 uint64_t debounce_ms,
			 const struct apphost_dirwatch_cb *cb);

/*
 * Watch the file at `path` (as configured; it need not exist) under `id`,
 * through its directory and, when realpath(path) differs from path, the
 * resolved file's directory. A directory that cannot be watched goes to
 * cb->failed and is not an error here. Returns 0 or APPHOST_ENOMEM (the
 * file may then be watched in part). Loop thread.
 */
int apphost_dirwatch_add(struct apphost_dirwatch *dw, const char *path,
			 size_t id);

/*
 * An event for file `name` in directory `dir` (as added): restart the
 * debounce of every file added with that directory and name. The
 * uv_fs_event callback calls this; so may a caller that knows of a
 * change by other means. Other names are ignored. Loop thread.
 */
void apphost_dirwatch_dispatch(struct apphost_dirwatch *dw, const char *dir,
			       const char *name);

/*
 * Drop every pending debounce, so no `changed` call follows the events
 * seen so far (the caller is about to act on every file anyway). Loop
 * thread.
 */
void apphost_dirwatch_cancel(struct apphost_dirwatch *dw);

/*
 * Stop watching and close every handle; the memory goes with the last
 * close callback, so the loop must run once more (uv_run NOWAIT) before
 * uv_loop_close. No callback is called after this returns. NULL is a
 * no-op. Loop thread.
 */
void apphost_dirwatch_free(struct apphost_dirwatch *dw);

#endif
