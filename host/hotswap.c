/* hotswap.c -- see hotswap.h. */
#include "hotswap.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define DEBOUNCE_MS	 300	       /* quiet time after the last event */
#define MAX_FILE_BYTES	 (1024u << 20) /* a component larger is refused */
#define DIR_PREFIX	 "apphost-hotswap-" /* + pid + "-XXXXXX" */
#define BUILD_ID_HEX_MAX 41

#if __SIZEOF_POINTER__ == 8
#define HOST_ELF_CLASS ELFCLASS64
#else
#define HOST_ELF_CLASS ELFCLASS32
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ELF_DATA ELFDATA2LSB
#else
#define HOST_ELF_DATA ELFDATA2MSB
#endif

/* What a component file was when it was copied. */
struct identity {
	char build_id[BUILD_ID_HEX_MAX]; /* GNU build id in hex, or "none" */
	char hash[17];			 /* FNV-1a 64 of the bytes, hex */
};

/* One private copy and the record loaded from it. */
struct copy {
	struct apphost_comp *comp;
	char *file; /* the copy's path (== comp->realpath while loaded) */
	char *src;  /* realpath of the file it was copied from */
	struct identity id;
};

/* One configured component: what to watch for it. */
struct entry {
	struct apphost_hotswap *hs;
	size_t index;	  /* in hs->list */
	char *dir[2];	  /* the path's directory, the target's (or NULL) */
	char *base[2];	  /* file names in those directories */
	uv_timer_t timer; /* debounce */
	bool timer_inited;
};

/* One watched directory. */
struct watch {
	uv_fs_event_t ev;
	struct apphost_hotswap *hs;
	char *dir;
};

struct apphost_hotswap {
	char dir[PATH_MAX]; /* private directory */
	unsigned seq;	    /* copy counter, for unique names */
	struct copy *copies;
	size_t ncopies;
	size_t stuck; /* replaced instances whose stop overran */

	uv_loop_t *loop;
	struct apphost_comp_list *list;
	const struct apphost_ctx *ctx;
	struct entry *entries;
	size_t nentries;
	struct watch **watches;
	size_t nwatches;
};

/* ---- small helpers ------------------------------------------------------ */

/* Split `path` into malloc()ed directory and base name. 0 or ENOMEM. */
static int split_path(const char *path, char **dir, char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		*dir = strdup(".");
	else if (slash == path)
		*dir = strdup("/");
	else
		*dir = strndup(path, (size_t)(slash - path));
	*base = strdup(slash != NULL ? slash + 1 : path);
	if (*dir == NULL || *base == NULL) {
		free(*dir);
		free(*base);
		*dir = *base = NULL;
		return APPHOST_ENOMEM;
	}
	return 0;
}

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

static bool fits(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

/* Find the GNU build id in the notes at b[off..off+len); hex into id. */
static void find_build_id(const unsigned char *b, uint64_t off, uint64_t len,
			  uint64_t align, char *id)
{
	uint64_t end = off + len;

	align = align == 8 ? 8 : 4;
	while (off + sizeof(ElfW(Nhdr)) <= end) {
		ElfW(Nhdr) nh;
		uint64_t name, desc, next;

		memcpy(&nh, b + off, sizeof(nh));
		name = off + sizeof(nh);
		desc = name + ((nh.n_namesz + align - 1) & ~(align - 1));
		next = desc + ((nh.n_descsz + align - 1) & ~(align - 1));
		if (desc + nh.n_descsz > end)
			return;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(b + name, "GNU", 4) == 0) {
			size_t n = nh.n_descsz;

			if (n > (BUILD_ID_HEX_MAX - 1) / 2)
				n = (BUILD_ID_HEX_MAX - 1) / 2;
			for (size_t i = 0; i < n; i++)
				snprintf(id + 2 * i, 3, "%02x", b[desc + i]);
			return;
		}
		off = next;
	}
}

/*
 * Is b[0..n) a whole ELF shared object for this host? NULL, or why not.
 * Every part the dynamic loader maps or reads must lie inside the file:
 * a file caught mid-write fails here instead of mapping short (SIGBUS).
 */
static const char *elf_why(const unsigned char *b, size_t n, char *build_id)
{
	ElfW(Ehdr) eh;

	snprintf(build_id, BUILD_ID_HEX_MAX, "none");
	if (n == 0)
		return "empty file (being written?)";
	if (memcmp(b, ELFMAG, n < SELFMAG ? n : SELFMAG) != 0)
		return "not an ELF file";
	if (n < sizeof(eh))
		return "shorter than an ELF header (being written?)";
	memcpy(&eh, b, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != HOST_ELF_CLASS ||
	    eh.e_ident[EI_DATA] != HOST_ELF_DATA)
		return "ELF class or byte order differs from the host's";
	if (eh.e_type != ET_DYN)
		return "not an ELF shared object";
	if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
	    !fits(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)), n))
		return "program headers missing or past the end of the file "
		       "(truncated: being written?)";
	if (eh.e_shoff != 0 &&
	    !fits(eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize, n))
		return "section headers past the end of the file (truncated: "
		       "being written?)";
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) ph;

		memcpy(&ph, b + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC ||
		     ph.p_type == PT_NOTE) &&
		    !fits(ph.p_offset, ph.p_filesz, n))
			return "a segment extends past the end of the file "
			       "(truncated: being written?)";
		if (ph.p_type == PT_NOTE && strcmp(build_id, "none") == 0)
			find_build_id(b, ph.p_offset, ph.p_filesz, ph.p_align,
				      build_id);
	}
	return NULL;
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

/* Remove every file in `dir`, then `dir`. */
static void remove_dir(const char *dir)
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

int apphost_hotswap_new(struct apphost_hotswap **out, char *err, size_t errlen)
{
	const char *bases[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"),
			       "/tmp", "/var/tmp"};
	struct apphost_hotswap *hs;

	*out = NULL;
	hs = calloc(1, sizeof(*hs));
	if (hs == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (!usable_base(bases[i]))
			continue;
		sweep(bases[i]);
		snprintf(hs->dir, sizeof(hs->dir),
			 "%s/" DIR_PREFIX "%ld-XXXXXX", bases[i],
			 (long)getpid());
		if (mkdtemp(hs->dir) != NULL) {
			*out = hs;
			return 0;
		}
	}
	snprintf(err, errlen,
		 "no directory for private component copies: tried "
		 "$XDG_RUNTIME_DIR, $TMPDIR, /tmp, /var/tmp (need a writable "
		 "directory on a mount without noexec)");
	free(hs);
	return APPHOST_EIO;
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
	char *real = NULL, *dir = NULL, *base = NULL, file[PATH_MAX];
	const char *why;
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
	why = elf_why(bytes, len, cp.id.build_id);
	if (why != NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
		rc = APPHOST_EINVAL;
		goto out;
	}
	snprintf(cp.id.hash, sizeof(cp.id.hash), "%016llx",
		 (unsigned long long)fnv1a64(bytes, len));
	rc = split_path(path, &dir, &base);
	if (rc < 0)
		goto out;
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
	rc = apphost_comp_load(file, &cp.comp, err, errlen);
	if (rc < 0) {
		name_original(err, errlen, file, path);
		goto out_unlink;
	}
	free(cp.comp->path);
	cp.comp->path = strdup(path);
	if (cp.comp->path == NULL) {
		apphost_comp_free(cp.comp);
		snprintf(err, errlen, "%s: out of memory", path);
		rc = APPHOST_ENOMEM;
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
	free(dir);
	free(base);
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
	parked = c->state == APPHOST_COMP_READY ||
		 c->state == APPHOST_COMP_RUNNING ||
		 c->state == APPHOST_COMP_STUCK;
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

	rc = load_copy(hs, src, old->path, &c, missing, err, errlen);
	if (rc < 0)
		return rc;
	if (strcmp(c->name, old->name) != 0) {
		snprintf(err, errlen,
			 "%s: component name changed from %s to %s; restart "
			 "the host to load a different component",
			 old->path, old->name, c->name);
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

	if (c->state != APPHOST_COMP_READY && c->state != APPHOST_COMP_RUNNING)
		return;
	rc = apphost_comp_stop_with_deadline(c, dl, err, sizeof(err));
	if (rc == APPHOST_ETIMEDOUT)
		hs->stuck++;
	if (rc == APPHOST_ETIMEDOUT)
		apphost_log(APPHOST_LOG_ERROR, NULL,
			    "hot swap: stop overran its deadline; that "
			    "instance is left running (parked)",
			    "name=%s instance=%s deadline_ms=%u", c->name,
			    which, ctx->shutdown_timeout_ms);
	else if (rc < 0)
		apphost_log(APPHOST_LOG_WARN, NULL, "hot swap: stop failed",
			    "name=%s instance=%s err=\"%s\"", c->name, which,
			    err);
}

/* Import buf into c (READY), logging a refusal. */
static void import_logged(struct apphost_comp *c, const void *buf, size_t len)
{
	int rc;

	if (buf == NULL || c->import_state == NULL)
		return;
	rc = c->import_state(c->cstate, buf, len);
	if (rc != 0)
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "hot swap: state import refused; the new "
			    "instance starts without it",
			    "name=%s bytes=%zu err=\"%s\"", c->name, len,
			    apphost_strerror(rc > 0 ? APPHOST_EINVAL : rc));
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
	rc = prepare(hs, old->realpath, old, ctx, &rc_comp, &missing, err,
		     sizeof(err));
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
		    old->name, old->path, start_err, err);
		apphost_status_set_up(old->name, false); /* /readyz: 503 */
		return old;
	}
	apphost_log(APPHOST_LOG_ERROR, NULL,
		    "hot swap: new build failed to start; previous build "
		    "restored",
		    "name=%s version=%s path=%s err=\"%s\"", old->name,
		    old->version, old->path, start_err);
	apphost_hotswap_unload(hs, old);
	return rc_comp;
}

int apphost_hotswap_swap(struct apphost_hotswap *hs,
			 struct apphost_comp_list *l, size_t i,
			 const struct apphost_ctx *ctx, const char *trigger)
{
	struct apphost_comp *old = l->v[i], *nc = NULL;
	struct identity oid = {"?", "?"}, nid;
	uint64_t t0 = apphost_now_ns(), gap0;
	void *buf = NULL;
	size_t len = 0;
	char err[1024];
	bool missing;
	int rc;

	if (find_copy(hs, old) != NULL)
		oid = find_copy(hs, old)->id;
	rc = prepare(hs, old->path, old, ctx, &nc, &missing, err, sizeof(err));
	if (rc < 0 && missing) {
		apphost_log(APPHOST_LOG_INFO, NULL,
			    "hot swap: component file missing; waiting for "
			    "it to reappear",
			    "name=%s path=%s trigger=%s", old->name, old->path,
			    trigger);
		return rc;
	}
	if (rc < 0) {
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "hot swap refused; the running build keeps "
			    "serving",
			    "name=%s path=%s trigger=%s reason=\"%s\"",
			    old->name, old->path, trigger, err);
		return rc;
	}
	nid = find_copy(hs, nc)->id;

	gap0 = apphost_now_ns();
	if (old->state == APPHOST_COMP_RUNNING && old->export_state != NULL &&
	    nc->import_state != NULL) {
		rc = old->export_state(old->cstate, &buf, &len);
		if (rc != 0) {
			apphost_log(
			    APPHOST_LOG_WARN, NULL,
			    "hot swap: state export failed; the new "
			    "instance starts without it",
			    "name=%s err=\"%s\"", old->name,
			    apphost_strerror(rc > 0 ? APPHOST_EINVAL : rc));
			free(buf);
			buf = NULL;
			len = 0;
		}
	}
	stop_logged(hs, old, ctx, "old");
	import_logged(nc, buf, len);
	rc = apphost_comp_start(nc, err, sizeof(err));
	if (rc < 0) {
		l->v[i] = restore(hs, old, nc, ctx, buf, len, err);
		free(buf);
		return rc;
	}
	l->v[i] = nc;
	apphost_metrics_hot_swap_inc(); /* apphost_hot_swaps_total */
	apphost_status_set_up(nc->name, true);
	apphost_log(APPHOST_LOG_INFO, NULL, "component swapped",
		    "name=%s trigger=%s old_version=%s old_build_id=%s "
		    "old_hash=%s new_version=%s new_build_id=%s new_hash=%s "
		    "state_bytes=%zu gap_ms=%.1f duration_ms=%.1f path=%s",
		    nc->name, trigger, old->version, oid.build_id, oid.hash,
		    nc->version, nid.build_id, nid.hash, len, ms_since(gap0),
		    ms_since(t0), nc->path);
	free(buf);
	apphost_hotswap_unload(hs, old);
	return 0;
}

/* ---- watching ------------------------------------------------------------ */

static void on_debounce(uv_timer_t *t)
{
	struct entry *e = t->data;
	struct apphost_hotswap *hs = e->hs;

	apphost_hotswap_swap(hs, hs->list, e->index, hs->ctx, "file");
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events,
			int status)
{
	struct watch *w = h->data;
	struct apphost_hotswap *hs = w->hs;

	if (status < 0) {
		apphost_log(APPHOST_LOG_WARN, NULL, "hot swap: watch failed",
			    "dir=%s err=\"%s\"", w->dir, uv_strerror(status));
		return;
	}
	if (filename == NULL)
		return;
	for (size_t i = 0; i < hs->nentries; i++) {
		struct entry *e = &hs->entries[i];

		for (int k = 0; k < 2; k++)
			if (e->dir[k] != NULL &&
			    strcmp(e->dir[k], w->dir) == 0 &&
			    strcmp(e->base[k], filename) == 0)
				uv_timer_start(&e->timer, on_debounce,
					       DEBOUNCE_MS, 0);
	}
}

/* Watch `dir` unless already watched. 0 or APPHOST_ENOMEM. */
static int watch_dir(struct apphost_hotswap *hs, const char *dir)
{
	struct watch *w, **nv;
	int rc;

	for (size_t i = 0; i < hs->nwatches; i++)
		if (strcmp(hs->watches[i]->dir, dir) == 0)
			return 0;
	nv = realloc(hs->watches, (hs->nwatches + 1) * sizeof(*nv));
	if (nv == NULL)
		return APPHOST_ENOMEM;
	hs->watches = nv;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->dir = strdup(dir)) == NULL) {
		free(w);
		return APPHOST_ENOMEM;
	}
	w->hs = hs;
	w->ev.data = w;
	uv_fs_event_init(hs->loop, &w->ev);
	hs->watches[hs->nwatches++] = w;
	rc = uv_fs_event_start(&w->ev, on_fs_event, dir, 0);
	if (rc < 0)
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "hot swap: cannot watch directory; swap with "
			    "SIGHUP",
			    "dir=%s err=\"%s\"", dir, uv_strerror(rc));
	return 0;
}

int apphost_hotswap_watch(struct apphost_hotswap *hs, uv_loop_t *loop,
			  struct apphost_comp_list *l,
			  const struct apphost_ctx *ctx)
{
	hs->loop = loop;
	hs->list = l;
	hs->ctx = ctx;
	hs->entries = calloc(l->n, sizeof(*hs->entries));
	if (hs->entries == NULL)
		return APPHOST_ENOMEM;
	hs->nentries = l->n;
	for (size_t i = 0; i < l->n; i++) {
		struct entry *e = &hs->entries[i];
		char *real = realpath(l->v[i]->path, NULL);

		e->hs = hs;
		e->index = i;
		uv_timer_init(loop, &e->timer);
		e->timer.data = e;
		e->timer_inited = true;
		if (split_path(l->v[i]->path, &e->dir[0], &e->base[0]) < 0 ||
		    (real != NULL && strcmp(real, l->v[i]->path) != 0 &&
		     split_path(real, &e->dir[1], &e->base[1]) < 0)) {
			free(real);
			return APPHOST_ENOMEM;
		}
		free(real);
		for (int k = 0; k < 2; k++)
			if (e->dir[k] != NULL && watch_dir(hs, e->dir[k]) < 0)
				return APPHOST_ENOMEM;
		apphost_log(APPHOST_LOG_INFO, NULL, "hot swap: watching",
			    "name=%s path=%s debounce_ms=%d", l->v[i]->name,
			    l->v[i]->path, DEBOUNCE_MS);
	}
	return 0;
}

static void free_watch(uv_handle_t *h)
{
	struct watch *w = h->data;

	free(w->dir);
	free(w);
}

void apphost_hotswap_unwatch(struct apphost_hotswap *hs)
{
	if (hs == NULL)
		return;
	for (size_t i = 0; i < hs->nwatches; i++)
		uv_close((uv_handle_t *)&hs->watches[i]->ev, free_watch);
	free(hs->watches);
	hs->watches = NULL;
	hs->nwatches = 0;
	/* Timers live in entries, freed at apphost_hotswap_free. */
	for (size_t i = 0; i < hs->nentries; i++)
		if (hs->entries[i].timer_inited) {
			uv_close((uv_handle_t *)&hs->entries[i].timer, NULL);
			hs->entries[i].timer_inited = false;
		}
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
	for (size_t i = 0; i < hs->nentries; i++)
		if (hs->entries[i].timer_inited)
			uv_timer_stop(&hs->entries[i].timer);
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
	for (size_t i = 0; i < hs->nentries; i++)
		for (int k = 0; k < 2; k++) {
			free(hs->entries[i].dir[k]);
			free(hs->entries[i].base[k]);
		}
	free(hs->entries);
	for (size_t i = 0; i < hs->ncopies; i++) {
		free(hs->copies[i].file);
		free(hs->copies[i].src);
	}
	free(hs->copies);
	remove_dir(hs->dir);
	free(hs);
}
