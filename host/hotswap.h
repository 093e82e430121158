/*
 * hotswap.h -- replacing a component while the host runs (DESIGN §8), for
 * development: APPHOST_HOT_SWAP=1.
 *
 * Private copies. With hot swap on, every component file is copied to a
 * unique path in a private directory (mkdtemp under $XDG_RUNTIME_DIR,
 * $TMPDIR or /tmp, mode 0700, skipping noexec mounts) and dlopen()ed from
 * there, also at startup. Two reasons: dlopen() caches by path (and by
 * inode), so a rebuilt file at the same path would return the old
 * handle; and `cp` / `install -C` rewrite a file in place, which changes
 * the pages of a running mapping under the component (or SIGBUSes it when
 * the file shrinks). A copy nobody else writes can never change. The
 * directory and its copies are removed at exit (and swept at the next
 * start when a host was killed; privdir.h).
 *
 * Watching. For each component the directory of its configured path is
 * watched with uv_fs_event (and the resolved directory when the path goes
 * through a symlinked directory; a symlinked file is refused by the
 * loader), filtered by file name: that sees an in-place write
 * (IN_MODIFY), a rename over it (a linker or `install` writing a temp
 * file), an unlink + create, and a file that is briefly missing
 * (dirwatch.h). Each event restarts a 300 ms debounce timer; when it
 * fires the file is swapped. SIGHUP swaps every component at once,
 * changed or not.
 *
 * One swap, on the main thread: read the file and check it is a whole
 * ELF shared object for this machine (elf_check.h: a file caught
 * mid-write is refused here, before dlopen() could map a short file),
 * copy it, dlopen() and check the copy (magic, ABI), require the same
 * component name, init it.
 * Any failure so far: logged with the reason, the copy removed, the
 * running instance untouched; the next change retries. Then: export the
 * old instance's state (when both export and import exist), stop it
 * (it finishes its batch and saves its offset), import into the new one,
 * start it, dlclose() the old one and remove its copy. The list keeps
 * its order. If the new one fails to start it is stopped and the old
 * build is started again from its own copy (fresh dlopen of a new copy,
 * init, the same state imported); if even that fails the error says the
 * component is not running, and the next change retries with the old
 * record stopped in the list.
 *
 * Every swap is logged with both identities: name, version, the GNU
 * build id (when the file has one) and an FNV-1a 64 hash of its bytes,
 * plus the total duration and the gap during which no instance ran.
 *
 * Threads: everything here runs on the main thread (the loop's).
 */
#ifndef APPHOST_HOST_HOTSWAP_H
#define APPHOST_HOST_HOTSWAP_H

#include <stddef.h>

#include <uv.h>

#include "lifecycle.h"
#include "run.h"
#include "services.h"

struct apphost_hotswap;

/*
 * Create the private directory (and sweep those of dead hosts). Returns 0
 * and *out (free with apphost_hotswap_free), or APPHOST_EIO /
 * APPHOST_ENOMEM with the reason in err. Main thread.
 */
int apphost_hotswap_new(struct apphost_hotswap **out, char *err, size_t errlen);

/* The private directory's path; owned by hs. Any thread. */
const char *apphost_hotswap_dir(const struct apphost_hotswap *hs);

/*
 * Replaced instances whose stop overran (0 for NULL): they may still run
 * and use ctx, so the host must exit without freeing it. Main thread.
 */
size_t apphost_hotswap_stuck(const struct apphost_hotswap *hs);

/*
 * Load the component at `path` from a fresh private copy: as
 * apphost_comp_load (an apphost_comp_load_fn; `hs` is the
 * struct apphost_hotswap), except that the file must also be a whole ELF
 * shared object, the record's `path` is `path` and its `realpath` the
 * copy. Messages name `path`. The caller frees *out with
 * apphost_hotswap_unload (or apphost_comp_free; the copy then goes at
 * apphost_hotswap_free). Main thread.
 */
int apphost_hotswap_load(const char *path, struct apphost_comp **out, char *err,
			 size_t errlen, void *hs);

/*
 * Free a record loaded by apphost_hotswap_load and remove its copy
 * (kept, with the record parked, when the component may still run or is
 * still mapped). NULL is a no-op. Main thread.
 */
void apphost_hotswap_unload(struct apphost_hotswap *hs, struct apphost_comp *c);

/*
 * Replace l->v[i], which was loaded by apphost_hotswap_load, with a
 * fresh load of its configured path, as described above. `trigger`
 * ("file", "SIGHUP") goes into the log. Returns 0 when swapped; a
 * negative code when the old instance kept serving (or, on a failed
 * start, was restored), every outcome logged. Main thread.
 */
int apphost_hotswap_swap(struct apphost_hotswap *hs,
			 struct apphost_comp_list *l, size_t i,
			 const struct apphost_ctx *ctx, const char *trigger);

/*
 * Watch the files of every component in l on `loop` and swap on change;
 * l and ctx must outlive apphost_hotswap_unwatch. A directory that
 * cannot be watched is logged (SIGHUP still works). Returns 0 or
 * APPHOST_ENOMEM. Main thread.
 */
int apphost_hotswap_watch(struct apphost_hotswap *hs, uv_loop_t *loop,
			  struct apphost_comp_list *l,
			  const struct apphost_ctx *ctx);

/* Close the watchers and timers (their close callbacks need one more
 * loop iteration). Idempotent. Main thread. */
void apphost_hotswap_unwatch(struct apphost_hotswap *hs);

/*
 * Fill *out with run hooks: on_start watches, on_sighup swaps every
 * component, on_stop unwatches. hs must outlive apphost_run. Any thread.
 */
void apphost_hotswap_hooks(struct apphost_hotswap *hs,
			   struct apphost_run_hooks *out);

/*
 * Remove the copies and the private directory and free hs; call after
 * the components were freed (their watchers closed). NULL is a no-op.
 * Main thread.
 */
void apphost_hotswap_free(struct apphost_hotswap *hs);

#endif
