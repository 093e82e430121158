/* loader.c -- see loader.h. */
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comp_int.h"
#include "lifecycle.h"
#include "magic_check.h"
#include "path.h"

const char *apphost_comp_state_name(enum apphost_comp_state s)
{
	switch (s) {
	case APPHOST_COMP_LOADED: return "loaded";
	case APPHOST_COMP_READY: return "initialised";
	case APPHOST_COMP_RUNNING: return "running";
	case APPHOST_COMP_STOPPED: return "stopped";
	case APPHOST_COMP_STUCK: return "stuck";
	default: return "?";
	}
}

const char *apphost_comp_name(const struct apphost_comp *c)
{
	return c->name;
}

const char *apphost_comp_version(const struct apphost_comp *c)
{
	return c->version;
}

const char *apphost_comp_path(const struct apphost_comp *c)
{
	return c->path;
}

const char *apphost_comp_realpath(const struct apphost_comp *c)
{
	return c->realpath;
}

const apphost_magic *apphost_comp_magic(const struct apphost_comp *c)
{
	return c->magic;
}

bool apphost_comp_can_export(const struct apphost_comp *c)
{
	return c->export_state != NULL;
}

bool apphost_comp_can_import(const struct apphost_comp *c)
{
	return c->import_state != NULL;
}

/* Describe why st fails the owner/mode rules, or return NULL. */
static const char *strict_why(const struct stat *st, uid_t euid, bool dir,
			      char *buf, size_t len)
{
	if (st->st_uid != 0 && st->st_uid != euid) {
		snprintf(buf, len,
			 "owned by uid %u, expected root or uid %u (the "
			 "host's user); fix: chown",
			 (unsigned)st->st_uid, (unsigned)euid);
		return buf;
	}
	if (dir && (st->st_mode & S_ISVTX))
		return NULL; /* sticky: others cannot replace our files */
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(
		    buf, len, "%s%s%swritable (mode %04o); fix: chmod go-w",
		    (st->st_mode & S_IWGRP) ? "group-" : "",
		    (st->st_mode & (S_IWGRP | S_IWOTH)) == (S_IWGRP | S_IWOTH)
			? " and "
			: "",
		    (st->st_mode & S_IWOTH) ? "world-" : "",
		    (unsigned)(st->st_mode & 07777));
		return buf;
	}
	return NULL;
}

/*
 * Walk the canonical directory `real` from "/" one component at a time,
 * each opened relative to the one before (O_PATH | O_NOFOLLOW, so a
 * component swapped for a symlink since realpath() fails instead of being
 * followed) and checked on its descriptor. Returns the descriptor of
 * `real` itself, or a negative code with the reason in err.
 */
static int walk_dirs(const char *real, const char *path, uid_t euid,
		     int *dfd_out, char *err, size_t errlen)
{
	char *copy, *save = NULL, *tok, why[160], shown[PATH_MAX];
	struct stat st;
	const char *w;
	int dfd, nfd, rc = 0, eno = 0;

	dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	copy = strdup(real);
	if (dfd < 0 || copy == NULL) {
		snprintf(err, errlen, "%s: %s", path,
			 copy == NULL ? "out of memory" : strerror(errno));
		if (dfd >= 0)
			close(dfd);
		free(copy);
		return copy == NULL ? APPHOST_ENOMEM : APPHOST_EIO;
	}
	snprintf(shown, sizeof(shown), "/");
	tok = strtok_r(copy, "/", &save);
	for (;;) {
		if (fstat(dfd, &st) < 0) {
			snprintf(err, errlen, "%s: directory %s: %s", path,
				 shown, strerror(errno));
			rc = APPHOST_EIO;
			break;
		}
		if ((w = strict_why(&st, euid, true, why, sizeof(why))) !=
		    NULL) {
			snprintf(err, errlen,
				 "%s: refused (bad owner or modes): directory "
				 "%s %s",
				 path, shown, w);
			rc = APPHOST_EINVAL;
			break;
		}
		if (tok == NULL)
			break;
		nfd = openat(dfd, tok,
			     O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		eno = errno;
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown),
			 "%s%s", strcmp(shown, "/") == 0 ? "" : "/", tok);
		if (nfd < 0) {
			snprintf(err, errlen,
				 "%s: directory %s: %s (changed while being "
				 "checked?)",
				 path, shown,
				 eno == ELOOP ? "now a symbolic link"
					      : strerror(eno));
			rc = eno == ELOOP || eno == ENOTDIR ? APPHOST_EINVAL
							    : APPHOST_EIO;
			break;
		}
		close(dfd);
		dfd = nfd;
		tok = strtok_r(NULL, "/", &save);
	}
	free(copy);
	if (rc < 0) {
		close(dfd);
		return rc;
	}
	*dfd_out = dfd;
	return 0;
}

int apphost_comp_open(const char *path, uid_t euid, int *fd_out,
		      char **real_out, char *err, size_t errlen)
{
	char *dir = NULL, *base = NULL, *rdir = NULL, *real = NULL, why[160];
	struct stat st;
	const char *w;
	int dfd = -1, fd = -1, rc, eno = 0;

	*fd_out = -1;
	if (real_out != NULL)
		*real_out = NULL;
	rc = apphost_path_split(path, &dir, &base);
	if (rc < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return rc;
	}
	if (base[0] == '\0' || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0) {
		snprintf(err, errlen, "%s: not a file name", path);
		rc = APPHOST_EINVAL;
		goto out;
	}
	/* Symlinked directories (/lib -> usr/lib) are resolved here; the
	 * walk then refuses any that changes before it is opened. */
	rdir = realpath(dir, NULL);
	if (rdir == NULL) {
		eno = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(eno));
		rc = eno == ENOMEM ? APPHOST_ENOMEM : APPHOST_EIO;
		goto out;
	}
	rc = walk_dirs(rdir, path, euid, &dfd, err, errlen);
	if (rc < 0)
		goto out;
	/* O_NONBLOCK: a FIFO planted under the name must not hang us. */
	fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		eno = errno;
		if (eno == ELOOP) {
			snprintf(err, errlen,
				 "%s: refused: a symbolic link (configure the "
				 "file it points to)",
				 path);
			rc = APPHOST_EINVAL;
		} else {
			snprintf(err, errlen, "%s: %s", path, strerror(eno));
			rc = eno == ENOMEM ? APPHOST_ENOMEM : APPHOST_EIO;
		}
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		eno = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(eno));
		rc = APPHOST_EIO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		rc = APPHOST_EINVAL;
		goto out;
	}
	w = strict_why(&st, euid, false, why, sizeof(why));
	if (w != NULL) {
		snprintf(err, errlen,
			 "%s: refused (bad owner or modes): file %s", path, w);
		rc = APPHOST_EINVAL;
		goto out;
	}
	if (real_out != NULL) {
		size_t n = strlen(rdir) + strlen(base) + 2;

		real = malloc(n);
		if (real == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			rc = APPHOST_ENOMEM;
			goto out;
		}
		snprintf(real, n, "%s%s%s", rdir,
			 strcmp(rdir, "/") == 0 ? "" : "/", base);
		*real_out = real;
	}
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	free(base);
	free(rdir);
	errno = eno;
	return rc;
}

int apphost_comp_check_file(const char *path, uid_t euid, char *err,
			    size_t errlen)
{
	int fd, rc = apphost_comp_open(path, euid, &fd, NULL, err, errlen);

	if (rc == 0)
		close(fd);
	return rc;
}

/*
 * Loaded records, to refuse a file listed twice (by inode: dlopen() of a
 * /proc/self/fd name cannot tell) and to catch glibc handing back an
 * object already loaded under a reused descriptor name.
 */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct apphost_comp **live;
static size_t live_n;

/* Under live_mu: the live record with this inode or handle, or NULL. */
static struct apphost_comp *live_find(dev_t dev, ino_t ino, const void *h)
{
	for (size_t i = 0; i < live_n; i++)
		if ((h == NULL && live[i]->dev == dev && live[i]->ino == ino) ||
		    (h != NULL && live[i]->handle == h))
			return live[i];
	return NULL;
}

static int live_add(struct apphost_comp *c)
{
	struct apphost_comp **nv;

	pthread_mutex_lock(&live_mu);
	nv = realloc(live, (live_n + 1) * sizeof(*nv));
	if (nv != NULL) {
		live = nv;
		live[live_n++] = c;
	}
	pthread_mutex_unlock(&live_mu);
	return nv != NULL ? 0 : APPHOST_ENOMEM;
}

static void live_remove(struct apphost_comp *c)
{
	pthread_mutex_lock(&live_mu);
	for (size_t i = 0; i < live_n; i++)
		if (live[i] == c) {
			live[i] = live[--live_n];
			break;
		}
	pthread_mutex_unlock(&live_mu);
}

/* Name dlopen() is given for descriptor fd. */
static void fd_name(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Stop-owed or stuck records are parked here, never unloaded. */
static pthread_mutex_t parked_mu = PTHREAD_MUTEX_INITIALIZER;
static struct apphost_comp **parked;
static size_t parked_n;

static void park(struct apphost_comp *c)
{
	struct apphost_comp **np;

	pthread_mutex_lock(&parked_mu);
	np = realloc(parked, (parked_n + 1) * sizeof(*np));
	if (np != NULL) {
		parked = np;
		parked[parked_n++] = c;
	} /* else: leaked, which is what parking means anyway */
	pthread_mutex_unlock(&parked_mu);
}

void apphost_comp_free(struct apphost_comp *c)
{
	if (c == NULL)
		return;
	if (apphost_comp_live(c)) {
		park(c);
		return;
	}
	live_remove(c);
	if (c->handle != NULL)
		dlclose(c->handle);
	if (c->fd >= 0) {
		char name[64];
		void *h;

		/*
		 * glibc knows the object by its /proc/self/fd name: while it
		 * stays mapped (dlclose may keep it) that descriptor must
		 * stay open, or the next file opened under the same number
		 * would be handed this object instead.
		 */
		fd_name(c->fd, name, sizeof(name));
		h = c->handle != NULL
			? dlopen(name, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD)
			: NULL;
		if (h != NULL)
			dlclose(h);
		else
			close(c->fd);
	}
	free(c->path);
	free(c->realpath);
	free(c);
}

/*
 * Look a function up. ISO C has no object-to-function pointer cast;
 * POSIX guarantees the representations match, so copy the bits.
 */
#define SYM(handle, name, fn)                                                  \
	do {                                                                   \
		void *p_ = dlsym((handle), (name));                            \
		memcpy(&(fn), &p_, sizeof(fn));                                \
	} while (0)

static bool token_ok(const char *s, size_t max, bool name)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, max);
	if (n == 0 || n >= max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (name &&
		    !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		      ch == '.'))
			return false;
		if (ch <= 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

static int verify(struct apphost_comp *c, char *err, size_t errlen)
{
	const char *p = c->path;
	apphost_magic_fn magic_fn;
	const apphost_magic *m;
	int rc;

	SYM(c->handle, APPHOST_SYM_MAGIC, magic_fn);
	if (magic_fn == NULL) {
		snprintf(err, errlen,
			 "%s: missing symbol %s (not an apphost component? "
			 "it must use APPHOST_COMPONENT(name, version))",
			 p, APPHOST_SYM_MAGIC);
		return APPHOST_EINVAL;
	}
	m = magic_fn();
	if (m == NULL) {
		snprintf(err, errlen, "%s: %s returned NULL", p,
			 APPHOST_SYM_MAGIC);
		return APPHOST_EINVAL;
	}
	rc = apphost_magic_check(p, m, err, errlen);
	if (rc < 0)
		return rc;
	if (!token_ok(m->name, sizeof(c->name), true)) {
		snprintf(err, errlen,
			 "%s: component name missing or not a token of "
			 "[A-Za-z0-9_.-], 1..%zu bytes",
			 p, sizeof(c->name) - 1);
		return APPHOST_EINVAL;
	}
	if (!token_ok(m->version, sizeof(c->version), false)) {
		snprintf(err, errlen,
			 "%s: component version missing or not printable, "
			 "1..%zu bytes",
			 p, sizeof(c->version) - 1);
		return APPHOST_EINVAL;
	}
	c->magic = m;
	snprintf(c->name, sizeof(c->name), "%s", m->name);
	snprintf(c->version, sizeof(c->version), "%s", m->version);

	SYM(c->handle, APPHOST_SYM_INIT, c->init);
	SYM(c->handle, APPHOST_SYM_START, c->start);
	SYM(c->handle, APPHOST_SYM_STOP, c->stop);
	if (c->init == NULL || c->start == NULL || c->stop == NULL) {
		snprintf(err, errlen, "%s: missing symbol %s", p,
			 c->init == NULL    ? APPHOST_SYM_INIT
			 : c->start == NULL ? APPHOST_SYM_START
					    : APPHOST_SYM_STOP);
		return APPHOST_EINVAL;
	}
	SYM(c->handle, APPHOST_SYM_EXPORT, c->export_state);
	SYM(c->handle, APPHOST_SYM_IMPORT, c->import_state);
	/* Read only from a component that knows the symbol's contract. */
	if (m->abi_minor >= 3)
		SYM(c->handle, APPHOST_SYM_CHECK, c->check);
	return 0;
}

int apphost_comp_load(const char *path, struct apphost_comp **out, char *err,
		      size_t errlen)
{
	struct apphost_comp *c, *other;
	char *real, name[64];
	struct stat st;
	void *h;
	int fd, rc;

	*out = NULL;
	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "empty component path");
		return APPHOST_EINVAL;
	}
	/* One open: the checks and dlopen() see the same file, whatever
	 * happens to its name or directories meanwhile. */
	rc = apphost_comp_open(path, geteuid(), &fd, &real, err, errlen);
	if (rc < 0)
		return rc;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		free(real);
		return APPHOST_EIO;
	}
	pthread_mutex_lock(&live_mu);
	other = live_find(st.st_dev, st.st_ino, NULL);
	pthread_mutex_unlock(&live_mu);
	if (other != NULL) {
		snprintf(err, errlen,
			 "%s: already loaded in this process as %s (listed "
			 "twice?)",
			 path, other->path);
		close(fd);
		free(real);
		return APPHOST_EINVAL;
	}
	fd_name(fd, name, sizeof(name));
	h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		size_t n = strlen(name);

		if (e != NULL && strncmp(e, name, n) == 0 && e[n] == ':')
			e += n + 1 + (e[n + 1] == ' ');
		snprintf(err, errlen, "%s: dlopen failed: %s%s", path,
			 e != NULL ? e : "unknown error",
			 access("/proc/self/fd", X_OK) != 0
			     ? " (components load through /proc/self/fd: is "
			       "/proc mounted?)"
			     : "");
		close(fd);
		free(real);
		return APPHOST_EINVAL;
	}
	pthread_mutex_lock(&live_mu);
	other = live_find(0, 0, h);
	pthread_mutex_unlock(&live_mu);
	if (other != NULL) { /* glibc matched a stale name: not our file */
		dlclose(h);
		snprintf(err, errlen,
			 "%s: dlopen returned the object loaded for %s; "
			 "refused",
			 path, other->path);
		close(fd);
		free(real);
		return APPHOST_EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->path = strdup(path)) == NULL) {
		free(c);
		dlclose(h);
		close(fd);
		free(real);
		snprintf(err, errlen, "%s: out of memory", path);
		return APPHOST_ENOMEM;
	}
	c->realpath = real;
	c->handle = h;
	c->fd = fd;
	c->dev = st.st_dev;
	c->ino = st.st_ino; /* state: LOADED (0) from calloc; lifecycle.c's */
	if (live_add(c) < 0) {
		c->fd = -1;
		apphost_comp_free(c);
		close(fd); /* after dlclose: see apphost_comp_free */
		snprintf(err, errlen, "%s: out of memory", path);
		return APPHOST_ENOMEM;
	}
	rc = verify(c, err, errlen);
	if (rc < 0) {
		apphost_comp_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int apphost_comp_load_as(const char *path, const char *shown,
			 struct apphost_comp **out, char *err, size_t errlen)
{
	char *copy = strdup(shown);
	int rc;

	if (copy == NULL) {
		*out = NULL;
		snprintf(err, errlen, "%s: out of memory", shown);
		return APPHOST_ENOMEM;
	}
	rc = apphost_comp_load(path, out, err, errlen);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	free((*out)->path);
	(*out)->path = copy;
	return 0;
}
