/* hotswap.c -- see hotswap.h. */
#include "hotswap.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "dirwatch.h"
#include "elf_check.h"
#include "log.h"
#include "metrics.h"
#include "privdir.h"
#include "status.h"

#define DEBOUNCE_MS    300	     /* quiet time after the last event */
#define MAX_FILE_BYTES (1024u << 20) /* a component larger is refused */

/* What a component file was when it was copied. */
struct identity {
	/* GNU build id in hex, or "none" */
	char build_id[APPHOST_ELF_BUILD_ID_MAX];
	char hash[17]; /* FNV-1a 64 of the bytes, hex */
};

/* One private copy and the record loaded from it. */
struct copy {
	struct apphost_comp *comp;
	char *file; /* the copy's path (== comp->realpath while loaded) */
	char *src;  /* realpath of the file it was copied from */
	struct identity id;
};

struct apphost_hotswap {
	char dir[PATH_MAX]; /* private directory */
	unsigned seq;	    /* copy counter, for unique names */
	struct copy *copies;
	size_t ncopies;
	size_t stuck; /* replaced instances whose stop overran */

	struct apphost_comp_list *list;
	const struct apphost_ctx *ctx;
	struct apphost_dirwatch *dw; /* NULL unless watching */
};

/* ---- small helpers ------------------------------------------------------ */

/* Messages from the loader name the copy; make them name `path`. */
static void name_original(char *err, size_t errlen, const char *copy,
			  const char *path)
{
	size_t n = strlen(copy);
	char *rest;

	if (strncmp(err, copy, n) != 0)
		return;
	rest = strdup(err + n);
	if (rest == NULL)
		return;
	snprintf(err, errlen, "%s%s", path, rest);
	free(rest);
}

static double ms_since(uint64_t t0)
{
	return (double)(apphost_now_ns() - t0) / 1e6;
}

/* ---- reading and checking a component file ------------------------------ */

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

/*
 * Read the whole regular file open on `fd` (checked by apphost_comp_open;
 * closed here) into a malloc()ed buffer, making sure it did not change
 * while being read; `path` names it in messages. 0, APPHOST_EIO (errno
 * kept in *eno), APPHOST_EINVAL, APPHOST_ENOMEM; reason in err.
 */
static int read_fd(int fd, const char *path, unsigned char **out,
		   size_t *outlen, int *eno, char *err, size_t errlen)
{
	struct stat st, st2;
	unsigned char *b;
	size_t got = 0;
	int rc = 0;

	*eno = 0;
	if (fstat(fd, &st) < 0) {
		*eno = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return APPHOST_EIO;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE_BYTES) {
		snprintf(err, errlen, "%s: %s", path,
			 S_ISREG(st.st_mode) ? "larger than 1 GiB"
					     : "not a regular file");
		close(fd);
		return APPHOST_EINVAL;
	}
	b = malloc((size_t)st.st_size + 1);
	if (b == NULL) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return APPHOST_ENOMEM;
	}
	/* One byte more than expected: a file that grew shows it. */
	while (got <= (size_t)st.st_size) {
		ssize_t r = read(fd, b + got, (size_t)st.st_size + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*eno = errno;
			snprintf(err, errlen, "%s: read: %s", path,
				 strerror(errno));
			rc = APPHOST_EIO;
			break;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (rc == 0 && (fstat(fd, &st2) < 0 || got != (size_t)st.st_size ||
			st2.st_size != st.st_size ||
			st2.st_mtim.tv_sec != st.st_mtim.tv_sec ||
			st2.st_mtim.tv_nsec != st.st_mtim.tv_nsec)) {
		snprintf(err, errlen,
			 "%s: changed while being read (being written?)", path);
		rc = APPHOST_EINVAL;
	}
	close(fd);
	if (rc < 0) {
		free(b);
		return rc;
	}
	*out = b;
	*outlen = got;
	return 0;
}

/* Write b[0..n) to a new file at `path`, mode 0500. 0 or APPHOST_EIO. */
static int write_file(const char *path, const unsigned char *b, size_t n,
		      char *err, size_t errlen)
{
	size_t done = 0;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0500);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return APPHOST_EIO;
	}
	while (done < n) {
		ssize_t w = write(fd, b + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	if (done < n || close(fd) < 0) {
		snprintf(err, errlen, "%s: write: %s", path,
			 done < n ? strerror(errno) : "close failed");
		if (done < n)
			close(fd);
		unlink(path);
		return APPHOST_EIO;
	}
	return 0;
}

/* ---- the private directory ---------------------------------------------- */

int apphost_hotswap_new(struct apphost_hotswap **out, char *err, size_t errlen)
{
	struct apphost_hotswap *hs;
	int rc;

	*out = NULL;
	hs = calloc(1, sizeof(*hs));
	if (hs == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	rc = apphost_privdir_new(hs->dir, sizeof(hs->dir), err, errlen);
	if (rc < 0) {
		free(hs);
		return rc;
	}
	*out = hs;
	return 0;
}

const char *apphost_hotswap_dir(const struct apphost_hotswap *hs)
{
	return hs->dir;
}

size_t apphost_hotswap_stuck(const struct apphost_hotswap *hs)
{
	return hs != NULL ? hs->stuck : 0;
}

/* ---- loading from a copy ------------------------------------------------- */

static struct copy *find_copy(struct apphost_hotswap *hs,
			      const struct apphost_comp *c)
{
	for (size_t i = 0; i < hs->ncopies; i++)
		if (hs->copies[i].comp == c)
			return &hs->copies[i];
	return NULL;
}

/*
 * Copy `src` (the configured file, or an old copy when restoring) into
 * the private directory and load it; the record's path becomes `path`.
 * *missing is set when src does not exist.
 */
static int load_copy(struct apphost_hotswap *hs, const char *src,
		     const char *path, struct apphost_comp **out, bool *missing,
		     char *err, size_t errlen)
{
	struct copy cp = {0}, *nv;
	unsigned char *bytes = NULL;
	char *real = NULL, file[PATH_MAX];
	const char *why, *base = strrchr(path, '/');
	size_t len = 0;
	int rc, n, fd, eno = 0;

	*out = NULL;
	*missing = false;
	/* The file we copy passes the loader's checks, and the bytes copied
	 * are read from the very descriptor that was checked. */
	rc = apphost_comp_open(src, geteuid(), &fd, &real, err, errlen);
	eno = errno;
	if (rc == 0)
		rc = read_fd(fd, src, &bytes, &len, &eno, err, errlen);
	*missing = rc == APPHOST_EIO && eno == ENOENT;
	if (rc < 0) {
		name_original(err, errlen, src, path);
		goto out;
	}
	why = apphost_elf_check(bytes, len, cp.id.build_id);
	if (why != NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
		rc = APPHOST_EINVAL;
		goto out;
	}
	snprintf(cp.id.hash, sizeof(cp.id.hash), "%016llx",
		 (unsigned long long)fnv1a64(bytes, len));
	base = base != NULL ? base + 1 : path;
	n = snprintf(file, sizeof(file), "%s/%u-%s", hs->dir, ++hs->seq, base);
	if (n < 0 || (size_t)n >= sizeof(file)) {
		snprintf(err, errlen, "%s: name too long for a copy", path);
		rc = APPHOST_EINVAL;
		goto out;
	}
	rc = write_file(file, bytes, len, err, errlen);
	if (rc < 0)
		goto out;
	nv = realloc(hs->copies, (hs->ncopies + 1) * sizeof(*nv));
	cp.file = strdup(file);
	if (nv != NULL)
		hs->copies = nv;
	if (nv == NULL || cp.file == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = APPHOST_ENOMEM;
		goto out_unlink;
	}
	rc = apphost_comp_load_as(file, path, &cp.comp, err, errlen);
	if (rc < 0) {
		name_original(err, errlen, file, path);
		goto out_unlink;
	}
	cp.src = real;
	real = NULL;
	hs->copies[hs->ncopies++] = cp;
	*out = cp.comp;
	cp.file = NULL;
	goto out;

out_unlink:
	unlink(file);
out:
	free(cp.file);
	free(bytes);
	free(real);
	return rc;
}

int apphost_hotswap_load(const char *path, struct apphost_comp **out, char *err,
			 size_t errlen, void *arg)
{
	struct apphost_hotswap *hs = arg;
	char *real = realpath(path, NULL);
	bool missing, twice = false;

	/* The copies have their own paths: refuse a file listed twice here,
	 * as the loader does without hot swap. */
	for (size_t i = 0; real != NULL && i < hs->ncopies; i++)
		twice = twice || (hs->copies[i].comp != NULL &&
				  strcmp(hs->copies[i].src, real) == 0);
	free(real);
	if (twice) {
		*out = NULL;
		snprintf(err, errlen,
			 "%s: already loaded in this process (listed twice?)",
			 path);
		return APPHOST_EINVAL;
	}
	return load_copy(hs, path, path, out, &missing, err, errlen);
}

void apphost_hotswap_unload(struct apphost_hotswap *hs, struct apphost_comp *c)
{
	struct copy *cp;
	bool parked;
	void *h;

	if (c == NULL)
		return;
	cp = find_copy(hs, c);
	parked = apphost_comp_live(c);
	apphost_comp_free(c);
	if (cp == NULL)
		return;
	/*
	 * Keep the file of a copy that is still mapped (parked, or a library
	 * dlclose() could not unload): glibc matches loaded objects by inode,
	 * and a freed inode number reused by the next copy would hand back
	 * the old code.
	 */
	h = parked ? NULL : dlopen(cp->file, RTLD_NOW | RTLD_NOLOAD);
	if (h != NULL) {
		dlclose(h);
		parked = true;
	}
	if (parked) {
		apphost_log(APPHOST_LOG_DEBUG, NULL,
			    "old component copy still mapped; kept until exit",
			    "file=%s", cp->file);
		cp->comp = NULL;
		return;
	}
	unlink(cp->file);
	free(cp->file);
	free(cp->src);
	*cp = hs->copies[--hs->ncopies];
}

/* ---- one swap ------------------------------------------------------------ */

/* Load, check and init a new instance; on failure nothing is left. */
static int prepare(struct apphost_hotswap *hs, const char *src,
		   const struct apphost_comp *old,
		   const struct apphost_ctx *ctx, struct apphost_comp **out,
		   bool *missing, char *err, size_t errlen)
{
	struct apphost_comp *c;
	int rc;

	rc = load_copy(hs, src, apphost_comp_path(old), &c, missing, err,
		       errlen);
	if (rc < 0)
		return rc;
	if (strcmp(apphost_comp_name(c), apphost_comp_name(old)) != 0) {
		snprintf(err, errlen,
			 "%s: component name changed from %s to %s; restart "
			 "the host to load a different component",
			 apphost_comp_path(old), apphost_comp_name(old),
			 apphost_comp_name(c));
		apphost_hotswap_unload(hs, c);
		return APPHOST_EINVAL;
	}
	rc = apphost_comp_init(c, ctx, err, errlen);
	if (rc < 0) {
		apphost_hotswap_unload(hs, c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Stop c within the shutdown deadline; log what is not a clean stop. */
static void stop_logged(struct apphost_hotswap *hs, struct apphost_comp *c,
			const struct apphost_ctx *ctx, const char *which)
{
	uint64_t dl =
	    apphost_now_ns() + (uint64_t)ctx->shutdown_timeout_ms * 1000000u;
	char err[512];
	int rc;

	if (apphost_comp_state(c) != APPHOST_COMP_READY &&
	    apphost_comp_state(c) != APPHOST_COMP_RUNNING)
		return;
	rc = apphost_comp_stop_with_deadline(c, dl, err, sizeof(err));
	if (rc == APPHOST_ETIMEDOUT)
		hs->stuck++;
	if (rc == APPHOST_ETIMEDOUT)
		apphost_log(APPHOST_LOG_ERROR, NULL,
			    "hot swap: stop overran its deadline; that "
			    "instance is left running (parked)",
			    "name=%s instance=%s deadline_ms=%u",
			    apphost_comp_name(c), which,
			    ctx->shutdown_timeout_ms);
	else if (rc < 0)
		apphost_log(APPHOST_LOG_WARN, NULL, "hot swap: stop failed",
			    "name=%s instance=%s err=\"%s\"",
			    apphost_comp_name(c), which, err);
}

/* Import buf into c (READY), logging a refusal. */
static void import_logged(struct apphost_comp *c, const void *buf, size_t len)
{
	int rc = apphost_comp_import(c, buf, len);

	if (rc != 0)
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "hot swap: state import refused; the new "
			    "instance starts without it",
			    "name=%s bytes=%zu err=\"%s\"",
			    apphost_comp_name(c), len, apphost_strerror(rc));
}

/*
 * The new instance did not start: stop it, then start the old build
 * again from its own copy with the same state. Returns the record now in
 * the list (the restored one, or the stopped old one).
 */
static struct apphost_comp *
restore(struct apphost_hotswap *hs, struct apphost_comp *old,
	struct apphost_comp *nc, const struct apphost_ctx *ctx, const void *buf,
	size_t len, const char *start_err)
{
	struct apphost_comp *rc_comp = NULL;
	char err[1024];
	bool missing;
	int rc;

	stop_logged(hs, nc, ctx, "new");
	apphost_hotswap_unload(hs, nc);
	rc = prepare(hs, apphost_comp_realpath(old), old, ctx, &rc_comp,
		     &missing, err, sizeof(err));
	if (rc == 0) {
		import_logged(rc_comp, buf, len);
		rc = apphost_comp_start(rc_comp, err, sizeof(err));
		if (rc < 0) {
			stop_logged(hs, rc_comp, ctx, "restored");
			apphost_hotswap_unload(hs, rc_comp);
		}
	}
	if (rc < 0) {
		apphost_log(
		    APPHOST_LOG_ERROR, NULL,
		    "hot swap: new build failed to start and the "
		    "previous build could not be restarted: component "
		    "NOT running; fix the build, the next change "
		    "retries",
		    "name=%s path=%s start_err=\"%s\" restore_err=\"%s\"",
		    apphost_comp_name(old), apphost_comp_path(old), start_err,
		    err);
		/* /readyz: 503 */
		apphost_status_set_up(apphost_comp_name(old), false);
		return old;
	}
	apphost_log(APPHOST_LOG_ERROR, NULL,
		    "hot swap: new build failed to start; previous build "
		    "restored",
		    "name=%s version=%s path=%s err=\"%s\"",
		    apphost_comp_name(old), apphost_comp_version(old),
		    apphost_comp_path(old), start_err);
	apphost_hotswap_unload(hs, old);
	return rc_comp;
}

int apphost_hotswap_swap(struct apphost_hotswap *hs,
			 struct apphost_comp_list *l, size_t i,
			 const struct apphost_ctx *ctx, const char *trigger)
{
	struct apphost_comp *old = l->v[i], *nc = NULL;
	const char *name = apphost_comp_name(old),
		   *path = apphost_comp_path(old);
	struct identity oid = {"?", "?"}, nid;
	uint64_t t0 = apphost_now_ns(), gap0;
	void *buf = NULL;
	size_t len = 0;
	char err[1024];
	bool missing;
	int rc;

	if (find_copy(hs, old) != NULL)
		oid = find_copy(hs, old)->id;
	rc = prepare(hs, path, old, ctx, &nc, &missing, err, sizeof(err));
	if (rc < 0 && missing) {
		apphost_log(APPHOST_LOG_INFO, NULL,
			    "hot swap: component file missing; waiting for "
			    "it to reappear",
			    "name=%s path=%s trigger=%s", name, path, trigger);
		return rc;
	}
	if (rc < 0) {
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "hot swap refused; the running build keeps "
			    "serving",
			    "name=%s path=%s trigger=%s reason=\"%s\"", name,
			    path, trigger, err);
		return rc;
	}
	nid = find_copy(hs, nc)->id;

	gap0 = apphost_now_ns();
	if (apphost_comp_can_import(nc)) {
		rc = apphost_comp_export(old, &buf, &len);
		if (rc != 0)
			apphost_log(APPHOST_LOG_WARN, NULL,
				    "hot swap: state export failed; the new "
				    "instance starts without it",
				    "name=%s err=\"%s\"", name,
				    apphost_strerror(rc));
	}
	stop_logged(hs, old, ctx, "old");
	import_logged(nc, buf, len);
	rc = apphost_comp_start(nc, err, sizeof(err));
	if (rc < 0) {
		(void)apphost_lifecycle_replace(
		    l, i, restore(hs, old, nc, ctx, buf, len, err));
		free(buf);
		return rc;
	}
	(void)apphost_lifecycle_replace(l, i, nc);
	apphost_metrics_hot_swap_inc(); /* apphost_hot_swaps_total */
	apphost_status_set_up(apphost_comp_name(nc), true);
	apphost_log(APPHOST_LOG_INFO, NULL, "component swapped",
		    "name=%s trigger=%s old_version=%s old_build_id=%s "
		    "old_hash=%s new_version=%s new_build_id=%s new_hash=%s "
		    "state_bytes=%zu gap_ms=%.1f duration_ms=%.1f path=%s",
		    apphost_comp_name(nc), trigger, apphost_comp_version(old),
		    oid.build_id, oid.hash, apphost_comp_version(nc),
		    nid.build_id, nid.hash, len, ms_since(gap0), ms_since(t0),
		    apphost_comp_path(nc));
	free(buf);
	apphost_hotswap_unload(hs, old);
	return 0;
}

/* ---- watching ------------------------------------------------------------ */

static void on_changed(void *arg, size_t index)
{
	struct apphost_hotswap *hs = arg;

	apphost_hotswap_swap(hs, hs->list, index, hs->ctx, "file");
}

static void on_watch_failed(void *arg, const char *dir, int uv_err, bool at_add)
{
	if (at_add)
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "hot swap: cannot watch directory; swap with "
			    "SIGHUP",
			    "dir=%s err=\"%s\"", dir, uv_strerror(uv_err));
	else
		apphost_log(APPHOST_LOG_WARN, NULL, "hot swap: watch failed",
			    "dir=%s err=\"%s\"", dir, uv_strerror(uv_err));
}

int apphost_hotswap_watch(struct apphost_hotswap *hs, uv_loop_t *loop,
			  struct apphost_comp_list *l,
			  const struct apphost_ctx *ctx)
{
	const struct apphost_dirwatch_cb cb = {
	    .changed = on_changed, .failed = on_watch_failed, .arg = hs};

	hs->list = l;
	hs->ctx = ctx;
	if (apphost_dirwatch_new(&hs->dw, loop, DEBOUNCE_MS, &cb) < 0)
		return APPHOST_ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		const char *path = apphost_comp_path(l->v[i]);

		if (apphost_dirwatch_add(hs->dw, path, i) < 0)
			return APPHOST_ENOMEM;
		apphost_log(APPHOST_LOG_INFO, NULL, "hot swap: watching",
			    "name=%s path=%s debounce_ms=%d",
			    apphost_comp_name(l->v[i]), path, DEBOUNCE_MS);
	}
	return 0;
}

void apphost_hotswap_unwatch(struct apphost_hotswap *hs)
{
	if (hs == NULL)
		return;
	apphost_dirwatch_free(hs->dw);
	hs->dw = NULL;
}

/* ---- run hooks ----------------------------------------------------------- */

static void hook_start(uv_loop_t *loop, struct apphost_comp_list *l,
		       const struct apphost_ctx *ctx, void *arg)
{
	if (apphost_hotswap_watch(arg, loop, l, ctx) < 0)
		apphost_log(APPHOST_LOG_ERROR, NULL,
			    "hot swap: cannot watch files (out of memory); "
			    "swap with SIGHUP",
			    NULL);
}

static void hook_sighup(uv_loop_t *loop, struct apphost_comp_list *l,
			const struct apphost_ctx *ctx, void *arg)
{
	struct apphost_hotswap *hs = arg;

	apphost_log(APPHOST_LOG_INFO, NULL, "SIGHUP: swapping every component",
		    "components=%zu", l->n);
	if (hs->dw != NULL)
		apphost_dirwatch_cancel(hs->dw);
	for (size_t i = 0; i < l->n; i++)
		apphost_hotswap_swap(hs, l, i, ctx, "SIGHUP");
}

static void hook_stop(uv_loop_t *loop, void *arg)
{
	apphost_hotswap_unwatch(arg);
}

void apphost_hotswap_hooks(struct apphost_hotswap *hs,
			   struct apphost_run_hooks *out)
{
	memset(out, 0, sizeof(*out));
	out->on_start = hook_start;
	out->on_sighup = hook_sighup;
	out->on_stop = hook_stop;
	out->arg = hs;
}

void apphost_hotswap_free(struct apphost_hotswap *hs)
{
	if (hs == NULL)
		return;
	for (size_t i = 0; i < hs->ncopies; i++) {
		free(hs->copies[i].file);
		free(hs->copies[i].src);
	}
	free(hs->copies);
	apphost_privdir_remove(hs->dir);
	free(hs);
}
