/* loader.c -- see loader.h. */
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Check `real`; messages name `path` (the file as configured). */
static int check_file(const char *real, const char *path, uid_t euid, char *err,
		      size_t errlen)
{
	struct stat st;
	char why[160], *dir, *slash;
	const char *w;
	int rc = 0;

	if (stat(real, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return APPHOST_EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return APPHOST_EINVAL;
	}
	w = strict_why(&st, euid, false, why, sizeof(why));
	if (w != NULL) {
		snprintf(err, errlen,
			 "%s: refused (bad owner or modes): file %s", path, w);
		return APPHOST_EINVAL;
	}
	dir = strdup(real);
	if (dir == NULL)
		return APPHOST_ENOMEM;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: directory %s: %s", path, dir,
			 strerror(errno));
		rc = APPHOST_EIO;
	} else if ((w = strict_why(&st, euid, true, why, sizeof(why))) !=
		   NULL) {
		snprintf(err, errlen,
			 "%s: refused (bad owner or modes): directory %s %s",
			 path, dir, w);
		rc = APPHOST_EINVAL;
	}
	free(dir);
	return rc;
}

int apphost_comp_check_file(const char *path, uid_t euid, char *err,
			    size_t errlen)
{
	return check_file(path, path, euid, err, errlen);
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
	if (c->state == APPHOST_COMP_READY ||
	    c->state == APPHOST_COMP_RUNNING ||
	    c->state == APPHOST_COMP_STUCK) {
		park(c);
		return;
	}
	if (c->handle != NULL)
		dlclose(c->handle);
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
	if (m->magic != APPHOST_MAGIC) {
		snprintf(err, errlen, "%s: magic 0x%08x, host expects 0x%08x",
			 p, (unsigned)m->magic, (unsigned)APPHOST_MAGIC);
		return APPHOST_EINVAL;
	}
	if (m->abi_major != APPHOST_ABI_MAJOR) {
		snprintf(err, errlen, "%s: ABI major %u, host supports %u", p,
			 (unsigned)m->abi_major, (unsigned)APPHOST_ABI_MAJOR);
		return APPHOST_EINVAL;
	}
	if (m->abi_minor > APPHOST_ABI_MINOR) {
		snprintf(err, errlen,
			 "%s: ABI minor %u, host supports up to %u.%u", p,
			 (unsigned)m->abi_minor, (unsigned)APPHOST_ABI_MAJOR,
			 (unsigned)APPHOST_ABI_MINOR);
		return APPHOST_EINVAL;
	}
	/*
	 * A component built against another hiredis would misread the
	 * redisContext the host lends (ABI 1.2 records it; 0.0: built
	 * without hiredis, nothing to misread).
	 */
	if (m->abi_minor >= 2 && (m->hiredis_major || m->hiredis_minor) &&
	    (m->hiredis_major != APPHOST_HIREDIS_MAJOR ||
	     m->hiredis_minor != APPHOST_HIREDIS_MINOR)) {
		snprintf(err, errlen,
			 "%s: built against hiredis %u.%u, host uses %u.%u", p,
			 (unsigned)m->hiredis_major, (unsigned)m->hiredis_minor,
			 (unsigned)APPHOST_HIREDIS_MAJOR,
			 (unsigned)APPHOST_HIREDIS_MINOR);
		return APPHOST_EINVAL;
	}
	if (m->services_size > sizeof(apphost_services)) {
		snprintf(err, errlen,
			 "%s: services table size %u, host provides %zu", p,
			 (unsigned)m->services_size, sizeof(apphost_services));
		return APPHOST_EINVAL;
	}
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
	return 0;
}

int apphost_comp_load(const char *path, struct apphost_comp **out, char *err,
		      size_t errlen)
{
	struct apphost_comp *c;
	char *real;
	void *h;
	int rc;

	*out = NULL;
	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "empty component path");
		return APPHOST_EINVAL;
	}
	real = realpath(path, NULL);
	if (real == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOMEM ? APPHOST_ENOMEM : APPHOST_EIO;
	}
	rc = check_file(real, path, geteuid(), err, errlen);
	if (rc < 0) {
		free(real);
		return rc;
	}
	h = dlopen(real, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
	if (h != NULL) {
		dlclose(h);
		snprintf(err, errlen,
			 "%s: already loaded in this process (listed twice?)",
			 path);
		free(real);
		return APPHOST_EINVAL;
	}
	h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();

		snprintf(err, errlen, "%s: dlopen failed: %s", path,
			 e != NULL ? e : "unknown error");
		free(real);
		return APPHOST_EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->path = strdup(path)) == NULL) {
		free(c);
		dlclose(h);
		free(real);
		snprintf(err, errlen, "%s: out of memory", path);
		return APPHOST_ENOMEM;
	}
	c->realpath = real;
	c->handle = h;
	c->state = APPHOST_COMP_LOADED;
	rc = verify(c, err, errlen);
	if (rc < 0) {
		apphost_comp_free(c);
		return rc;
	}
	*out = c;
	return 0;
}
