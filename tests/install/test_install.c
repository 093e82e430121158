/*
 * test_install.c -- suite 'install': what `meson install` laid out in
 * INSTALL_DESTDIR (tests/install/run installs there, then runs this):
 * the layout, pkg-config, the generated unit, the man pages against
 * `apphost --help`, a component built out of the tree with `pkg-config
 * --cflags apphost` alone running under the installed apphost, systemd's
 * notify protocol on a socket the test listens on, and the installed
 * migrate command against a fresh database.
 *
 * Environment (from tests/install/meson.build): INSTALL_DESTDIR,
 * INSTALL_PREFIX and the install dirs as meson has them (relative to the
 * prefix or absolute), INSTALL_MAN (1: man pages expected), TEST_CC,
 * TEST_SOURCE_DIR (this directory), TEST_SCHEMA_DIR, PROJECT_VERSION.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "apphost_proc.h"
#include "index_params.h"
#include "real_services.h"

/* ---- paths ---- */

static const char *env_req(const char *key)
{
	const char *v = getenv(key);

	cr_assert(v != NULL && v[0] != '\0',
		  "%s is not set: run this suite with meson test --suite "
		  "install",
		  key);
	return v;
}

/* DESTDIR + the install dir `key` names (+ "/" + rest), malloc()ed. */
static char *inst(const char *key, const char *rest)
{
	const char *dest = env_req("INSTALL_DESTDIR");
	const char *dir = env_req(key);
	char *out;
	int n;

	if (dir[0] == '/')
		n = asprintf(&out, "%s%s%s%s", dest, dir, rest ? "/" : "",
			     rest ? rest : "");
	else
		n = asprintf(&out, "%s%s/%s%s%s", dest,
			     env_req("INSTALL_PREFIX"), dir, rest ? "/" : "",
			     rest ? rest : "");
	cr_assert(n > 0);
	return out;
}

/* The installed path without DESTDIR (what the files themselves name). */
static char *final_path(const char *key, const char *rest)
{
	char *p = inst(key, rest);
	size_t dl = strlen(env_req("INSTALL_DESTDIR"));

	memmove(p, p + dl, strlen(p + dl) + 1);
	return p;
}

/* ---- commands ---- */

/* Run a shell command; its stdout+stderr into *out. Returns exit code. */
static int sh(char **out, const char *fmt, ...)
{
	char *cmd, *full, buf[4096];
	size_t len = 0, n;
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	cr_assert(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	cr_assert(asprintf(&full, "(%s) 2>&1", cmd) > 0);
	p = popen(full, "r");
	cr_assert(p != NULL, "popen %s: %s", cmd, strerror(errno));
	*out = calloc(1, 1);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
		*out = realloc(*out, len + n + 1);
		memcpy(*out + len, buf, n);
		len += n;
		(*out)[len] = '\0';
	}
	st = pclose(p);
	free(cmd);
	free(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * pkg-config against the DESTDIR's .pc files only; with `sysroot`, flags
 * (and pkgconf's variables) name the DESTDIR too.
 */
static int pkgconf_in(char **out, bool sysroot, const char *args)
{
	char *pcdir = inst("INSTALL_LIBDIR", "pkgconfig");
	int rc = sh(out,
		    "PKG_CONFIG_LIBDIR='%s' PKG_CONFIG_PATH= "
		    "PKG_CONFIG_SYSROOT_DIR='%s' pkg-config %s",
		    pcdir, sysroot ? env_req("INSTALL_DESTDIR") : "", args);

	free(pcdir);
	return rc;
}

static int pkgconf(char **out, const char *args)
{
	return pkgconf_in(out, true, args);
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* A temporary directory for one test (0700). */
static char *tmpdir(void)
{
	char *d;
	const char *base = getenv("TMPDIR");

	cr_assert(asprintf(&d, "%s/apphost-install-test.XXXXXX",
			   base != NULL && base[0] != '\0' ? base : "/tmp") >
		  0);
	cr_assert(mkdtemp(d) != NULL, "mkdtemp: %s", strerror(errno));
	return d;
}

/*
 * Build tests/install/hello.c out of the tree: copied to a temporary
 * directory, compiled with `pkg-config --cflags apphost` and nothing else
 * from this project. Returns the .so path (malloc()ed).
 */
static char *build_hello(void)
{
	char *dir = tmpdir(), *cflags, *out, *so;
	int rc;

	cr_assert(pkgconf(&cflags, "--cflags apphost") == 0, "pkg-config: %s",
		  cflags);
	chomp(cflags);
	rc = sh(&out,
		"cp '%s/hello.c' '%s/' && cd '%s' && %s -std=c11 "
		"-Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden "
		"-pthread %s hello.c -o hello.so",
		env_req("TEST_SOURCE_DIR"), dir, dir, env_req("TEST_CC"),
		cflags);
	cr_assert(rc == 0, "building hello.so out of the tree failed:\n%s",
		  out);
	cr_assert(asprintf(&so, "%s/hello.so", dir) > 0);
	free(cflags);
	free(out);
	free(dir);
	return so;
}

/* ---- layout ---- */

/* What a row of wants[] asks of its file. */
enum {
	WANT_FILE = 0, /* a regular file, nothing more */
	WANT_EXEC = 1, /* must be executable */
	WANT_LINK = 2, /* a symlink, not a regular file */
	WANT_MAN = 4,  /* only when INSTALL_MAN=1 */
};

struct want {
	const char *dirkey;
	const char *rest;
	int flags; /* WANT_* */
};

static const struct want wants[] = {
    /* the programs, each beside its man page */
    {"INSTALL_BINDIR", "apphost", WANT_EXEC},
    {"INSTALL_MANDIR", "man1/apphost.1", WANT_MAN},
    {"INSTALL_COMPONENTDIR", "health_events.so", WANT_FILE},
    {"INSTALL_MANDIR", "man7/health_events.7", WANT_MAN},
    {"INSTALL_INCLUDEDIR", "apphost/component.h", WANT_FILE},
    {"INSTALL_LIBDIR", "pkgconfig/apphost.pc", WANT_FILE},
    {"INSTALL_INCLUDEDIR", "apphost/mock.h", WANT_FILE},
    {"INSTALL_LIBDIR", "libapphost-mock.a", WANT_FILE},
    {"INSTALL_LIBDIR", "pkgconfig/apphost-mock.pc", WANT_FILE},
    {"INSTALL_DATADIR", "apphost/schema/001_runtime_records.sql", WANT_FILE},
    {"INSTALL_DATADIR", "apphost/migrate", WANT_LINK | WANT_EXEC},
    {"INSTALL_LIBEXECDIR", "apphost/apphost-migrate", WANT_EXEC},
    {"INSTALL_DATADIR", "apphost/prometheus/apphost-alerts.yml", WANT_FILE},
    {"INSTALL_DATADIR", "apphost/prometheus/apphost-alerts.test.yml",
     WANT_FILE},
    {"INSTALL_UNITDIR", "apphost.service", WANT_FILE},
    {"INSTALL_SYSCONFDIR", "apphost/apphost.env", WANT_FILE},
    {"INSTALL_DOCDIR", "README.md", WANT_FILE},
    {"INSTALL_DOCDIR", "design.md", WANT_FILE},
    {"INSTALL_DOCDIR", "components.md", WANT_FILE},
    {"INSTALL_DOCDIR", "operations.md", WANT_FILE},
};

ParameterizedTestParameters(install, layout)
{
	INDEX_PARAMS(wants);
}

ParameterizedTest(size_t *i, install, layout)
{
	const struct want *w = &wants[*i];
	char *p = inst(w->dirkey, w->rest);
	mode_t type = (w->flags & WANT_LINK) ? S_IFLNK : S_IFREG;
	struct stat st;

	if ((w->flags & WANT_MAN) && strcmp(env_req("INSTALL_MAN"), "1") != 0) {
		free(p);
		cr_skip_test("man pages not built (no scdoc)");
	}
	cr_assert(lstat(p, &st) == 0, "%s not installed: %s", p,
		  strerror(errno));
	cr_assert((st.st_mode & S_IFMT) == type, "%s: wrong file type", p);
	/* A symlink must resolve inside the same tree (relative). */
	cr_assert(stat(p, &st) == 0, "%s does not resolve: %s", p,
		  strerror(errno));
	cr_assert(!(st.st_mode & 022), "%s is group/world-writable", p);
	if (w->flags & WANT_EXEC)
		cr_assert(access(p, X_OK) == 0, "%s not executable", p);
	free(p);
}

/* The configuration template can hold a DSN password: 0600. */
Test(install, env_template_private)
{
	char *p = inst("INSTALL_SYSCONFDIR", "apphost/apphost.env");
	struct stat st;

	cr_assert(stat(p, &st) == 0, "%s: %s", p, strerror(errno));
	cr_expect((st.st_mode & 0777) == 0600, "%s mode %o, want 0600", p,
		  (unsigned)(st.st_mode & 0777));
	free(p);
}

/* Every migration of the source tree is installed, byte for byte. */
Test(install, schema_complete)
{
	char *inst_dir = inst("INSTALL_DATADIR", "apphost/schema"), *out;
	int rc =
	    sh(&out, "diff -r '%s' '%s'", env_req("TEST_SCHEMA_DIR"), inst_dir);

	cr_assert(rc == 0, "installed schema differs from schema/:\n%s", out);
	free(out);
	free(inst_dir);
}

/* ---- pkg-config ---- */

Test(install, pkgconfig)
{
	char *out, *want;

	cr_assert(pkgconf(&out, "--modversion apphost") == 0, "%s", out);
	chomp(out);
	cr_expect_str_eq(out, env_req("PROJECT_VERSION"));
	free(out);

	cr_assert(pkgconf(&out, "--cflags apphost") == 0, "%s", out);
	want = inst("INSTALL_INCLUDEDIR", NULL);
	cr_expect(strstr(out, want) != NULL,
		  "--cflags \"%s\" does not name the installed %s", out, want);
	free(want);
	free(out);

	cr_assert(pkgconf(&out, "--libs apphost") == 0, "%s", out);
	chomp(out);
	cr_expect_str_empty(out, "a component links nothing: \"%s\"", out);
	free(out);

	cr_assert(pkgconf_in(&out, false, "--variable=componentdir apphost") ==
		      0,
		  "%s", out);
	chomp(out);
	want = final_path("INSTALL_COMPONENTDIR", NULL);
	cr_expect_str_eq(out, want);
	free(want);
	free(out);
}

/* ---- the unit and the man pages ---- */

Test(install, unit_names_installed_paths)
{
	char *p = inst("INSTALL_UNITDIR", "apphost.service");
	char *unit = ap_read_file(p), *line, *out;
	char *bin = final_path("INSTALL_BINDIR", "apphost");
	char *envf = final_path("INSTALL_SYSCONFDIR", "apphost/apphost.env");

	cr_assert(unit != NULL, "%s unreadable", p);
	cr_assert(asprintf(&line, "\nExecStart=%s\n", bin) > 0);
	cr_expect(strstr(unit, line) != NULL, "no \"%s\" in %s", line + 1, p);
	free(line);
	cr_assert(asprintf(&line, "\nEnvironmentFile=%s\n", envf) > 0);
	cr_expect(strstr(unit, line) != NULL, "no \"%s\" in %s", line + 1, p);
	free(line);
	cr_expect(strstr(unit, "\nType=notify\n") != NULL);
	cr_expect(strstr(unit, "\nWatchdogSec=") != NULL);
	cr_expect(strstr(unit, "\nDynamicUser=yes\n") != NULL);
	for (const char *a = strchr(unit, '@'); a != NULL;
	     a = strchr(a + 1, '@')) {
		size_t n = strspn(a + 1, "abcdefghijklmnopqrstuvwxyz");

		cr_expect(!(n > 0 && a[n + 1] == '@'),
			  "an unsubstituted %.*s in %s", (int)n + 2, a, p);
	}
	/* systemd's own parser, on a copy whose ExecStart names the binary
	 * in the DESTDIR (verify checks that it exists). */
	if (access("/usr/bin/systemd-analyze", X_OK) == 0) {
		char *dir = tmpdir(), *dbin = inst("INSTALL_BINDIR", "apphost");
		int rc =
		    sh(&out,
		       "sed 's|^ExecStart=%s$|ExecStart=%s|' '%s' > "
		       "'%s/apphost.service' && SYSTEMD_LOG_LEVEL=warning "
		       "systemd-analyze verify --man=no '%s/apphost.service'",
		       bin, dbin, p, dir, dir);

		cr_expect(rc == 0, "systemd-analyze verify:\n%s", out);
		free(out);
		free(dbin);
		free(dir);
	}
	free(unit);
	free(p);
	free(bin);
	free(envf);
}

/*
 * Every configuration key `apphost --help` lists is documented: APPHOST_*
 * in apphost(1), a component's keys in its page.
 */
Test(install, man_pages_document_every_key)
{
	char *bin = inst("INSTALL_BINDIR", "apphost"), *help, *save = NULL;
	char *p1 = inst("INSTALL_MANDIR", "man1/apphost.1");
	char *p7 = inst("INSTALL_MANDIR", "man7/health_events.7");
	char *m1, *m7;

	if (strcmp(env_req("INSTALL_MAN"), "1") != 0)
		cr_skip_test("man pages not built (no scdoc)");
	cr_assert(sh(&help, "'%s' --help", bin) == 0, "%s", help);
	m1 = ap_read_file(p1);
	m7 = ap_read_file(p7);
	cr_assert(m1 != NULL && m7 != NULL);
	for (char *l = strtok_r(help, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		char key[128];

		if (sscanf(l, "  %127[A-Z0-9_] default:", key) != 1 ||
		    strstr(l, "default:") == NULL)
			continue;
		if (strncmp(key, "APPHOST_", 8) == 0)
			cr_expect(strstr(m1, key) != NULL,
				  "apphost(1) does not document %s", key);
		else if (strncmp(key, "HEALTH_EVENTS_", 14) == 0)
			cr_expect(strstr(m7, key) != NULL,
				  "health_events(7) does not document %s", key);
	}
	free(help);
	free(m1);
	free(m7);
	free(p1);
	free(p7);
	free(bin);
}

/* ---- running what was installed ---- */

static void env_common(ap_env *e)
{
	/* Nothing here needs a server: pools connect on first lease. */
	ap_env_put(e, "APPHOST_HTTP_ADDR=");
	ap_env_put(e, "APPHOST_SHUTDOWN_TIMEOUT_MS=3000");
	ap_env_put(e, "HELLO_GREETING=hi there");
}

/* Run the installed apphost with `args`; output into *out. */
static int run_apphost(char **out, const char *args, const char *components)
{
	char *bin = inst("INSTALL_BINDIR", "apphost");
	int rc = sh(out,
		    "APPHOST_HTTP_ADDR= HELLO_GREETING='hi there' "
		    "APPHOST_COMPONENTS='%s' '%s' %s",
		    components, bin, args);
	free(bin);
	return rc;
}

Test(install, out_of_tree_component_check)
{
	char *so = build_hello(), *out;
	int rc = run_apphost(&out, "--check", so);

	cr_expect(rc == 0, "apphost --check with hello.so: exit %d\n%s", rc,
		  out);
	cr_expect(strstr(out, "name=hello version=1.0.0") != NULL, "%s", out);
	cr_expect(strstr(out, "check passed") != NULL, "%s", out);
	free(out);
	free(so);
}

Test(install, installed_health_events_check)
{
	char *so = inst("INSTALL_COMPONENTDIR", "health_events.so"), *out;
	int rc = run_apphost(&out, "--check", so);

	cr_expect(rc == 0,
		  "apphost --check with the installed "
		  "health_events.so: exit %d\n%s",
		  rc, out);
	cr_expect(strstr(out, "name=health_events") != NULL, "%s", out);
	free(out);
	free(so);
}

/* ---- systemd notify ---- */

struct listener {
	int fd;
	char addr[108]; /* as NOTIFY_SOCKET names it */
	char *dir;
};

static void listen_notify(struct listener *l, bool abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;

	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(l->fd >= 0);
	l->dir = tmpdir();
	if (abstract) {
		snprintf(l->addr, sizeof(l->addr), "@apphost-test-%ld-%s",
			 (long)getpid(), strrchr(l->dir, '.') + 1);
		memcpy(sa.sun_path, l->addr, strlen(l->addr));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				  strlen(l->addr));
	} else {
		snprintf(l->addr, sizeof(l->addr), "%s/notify", l->dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->addr);
		len = sizeof(sa);
	}
	cr_assert(bind(l->fd, (struct sockaddr *)&sa, len) == 0, "bind %s: %s",
		  l->addr, strerror(errno));
}

/*
 * Wait up to timeout_ms for a datagram containing the line `want`;
 * every message seen is appended to *seen ("|"-separated). True when
 * found.
 */
static bool wait_msg(struct listener *l, const char *want, int timeout_ms,
		     char **seen)
{
	double end = th_now_ms() + timeout_ms;
	char buf[4096];

	for (;;) {
		struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
		double left = end - th_now_ms();
		ssize_t n;
		char *lines, *save = NULL;
		bool hit = false;

		if (left <= 0 || poll(&pfd, 1, (int)left + 1) <= 0)
			return false;
		n = recv(l->fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (seen != NULL) {
			size_t old = *seen ? strlen(*seen) : 0;

			*seen = realloc(*seen, old + (size_t)n + 2);
			if (old == 0)
				(*seen)[0] = '\0';
			strcat(*seen, buf);
			strcat(*seen, "|");
		}
		lines = buf;
		for (char *t = strtok_r(lines, "\n", &save); t != NULL;
		     t = strtok_r(NULL, "\n", &save))
			if (strcmp(t, want) == 0)
				hit = true;
		if (hit)
			return true;
	}
}

static pid_t spawn_notified(struct listener *l, const char *so,
			    const char *const *extra, const char *log)
{
	ap_env *e = ap_env_new();
	char *bin = inst("INSTALL_BINDIR", "apphost"), *kv;
	pid_t pid;

	env_common(e);
	cr_assert(asprintf(&kv, "APPHOST_COMPONENTS=%s", so) > 0);
	ap_env_put(e, kv);
	free(kv);
	cr_assert(asprintf(&kv, "NOTIFY_SOCKET=%s", l->addr) > 0);
	ap_env_put(e, kv);
	free(kv);
	ap_env_put_all(e, extra);
	pid = ap_spawn(bin, e, log);
	ap_env_free(e);
	free(bin);
	return pid;
}

static void notify_cycle(bool abstract)
{
	struct listener l;
	char *so = build_hello(), *seen = NULL, *log;
	const char *extra[] = {"WATCHDOG_USEC=200000",
			       "HELLO_READY_AFTER_MS=300", "HELLO_NOTE=leader",
			       NULL};
	pid_t pid;

	listen_notify(&l, abstract);
	cr_assert(asprintf(&log, "%s/apphost.log", l.dir) > 0);
	pid = spawn_notified(&l, so, extra, log);
	cr_assert(wait_msg(&l, "READY=1", 5000, &seen),
		  "no READY=1 within 5 s; seen: %s", seen ? seen : "nothing");
	/* READY=1 comes only after the component started. */
	cr_expect(ap_log_count(log, "component started", "name=hello", NULL) ==
		      1,
		  "READY=1 before \"component started\"");
	cr_expect(strstr(seen, "STATUS=not ready: hello: warming up") != NULL,
		  "first STATUS: %s", seen);
	/* a ready component's note ("leader", "standby") shows too */
	cr_expect(wait_msg(&l, "STATUS=ready: hello: leader", 5000, &seen),
		  "no STATUS=ready with the note once hello is ready; seen: %s",
		  seen);
	/* 200 ms watchdog: a ping each 100 ms; ask for three within 5 s. */
	for (int i = 0; i < 3; i++)
		cr_expect(wait_msg(&l, "WATCHDOG=1", 5000, &seen),
			  "WATCHDOG=1 #%d missing; seen: %s", i + 1, seen);
	/* SIGTERM, exit 0; the datagram waits in the socket meanwhile. */
	cr_expect_eq(ap_terminate_within(pid, 5000, NULL), 0);
	cr_expect(wait_msg(&l, "STOPPING=1", 1000, &seen),
		  "no STOPPING=1 after SIGTERM; seen: %s", seen);
	close(l.fd);
	free(l.dir);
	free(seen);
	free(log);
	free(so);
}

Test(notify, ready_status_watchdog_stopping)
{
	notify_cycle(false);
}

Test(notify, abstract_socket)
{
	notify_cycle(true);
}

/* WATCHDOG_PID naming another process: no WATCHDOG=1 for us. */
Test(notify, watchdog_for_another_pid)
{
	struct listener l;
	char *so = build_hello(), *seen = NULL, *log;
	const char *extra[] = {"WATCHDOG_USEC=100000", "WATCHDOG_PID=1", NULL};
	pid_t pid;

	listen_notify(&l, false);
	cr_assert(asprintf(&log, "%s/apphost.log", l.dir) > 0);
	pid = spawn_notified(&l, so, extra, log);
	cr_assert(wait_msg(&l, "READY=1", 5000, &seen), "seen: %s",
		  seen ? seen : "nothing");
	/* 1 s would hold ten pings at 100 ms. */
	cr_expect(!wait_msg(&l, "WATCHDOG=1", 1000, &seen),
		  "WATCHDOG=1 sent although WATCHDOG_PID is not ours: %s",
		  seen);
	cr_expect_eq(ap_terminate_within(pid, 5000, NULL), 0);
	close(l.fd);
	free(l.dir);
	free(seen);
	free(log);
	free(so);
}

/* A NOTIFY_SOCKET that names nothing usable is a warning, not a failure. */
Test(notify, unusable_socket_warns)
{
	struct listener l = {.fd = -1};
	char *so = build_hello(), *log, *dir = tmpdir(), *line;
	pid_t pid;

	snprintf(l.addr, sizeof(l.addr), "relative/path");
	cr_assert(asprintf(&log, "%s/apphost.log", dir) > 0);
	pid = spawn_notified(&l, so, NULL, log);
	line = ap_wait_log(log, "systemd notification not sent", 1, pid, 5000);
	cr_expect(strstr(line, "socket=\"relative/path\"") != NULL, "%s", line);
	free(line);
	free(ap_wait_log(log, "running", 1, pid, 5000));
	cr_expect_eq(ap_terminate_within(pid, 5000, NULL), 0);
	free(log);
	free(dir);
	free(so);
}

/* ---- migrate ---- */

/* A DSN for a fresh database on the test server; dropped by drop_db. */
static char *fresh_db(PGconn *admin, char *name, size_t cap)
{
	char *sql, *dsn;
	const char *base = env_req("APPHOST_POSTGRES_DSN");
	const char *slash = strrchr(base, '/');

	snprintf(name, cap, "install_%ld", (long)getpid());
	cr_assert(asprintf(&sql, "DROP DATABASE IF EXISTS %s", name) > 0);
	th_sql(admin, sql, NULL);
	free(sql);
	cr_assert(asprintf(&sql, "CREATE DATABASE %s", name) > 0);
	th_sql(admin, sql, NULL);
	free(sql);
	/* scripts/services' DSN is a URI ending in /dbname. */
	cr_assert(slash != NULL && strncmp(base, "postgresql://", 13) == 0,
		  "expected a postgresql:// URI: the test swaps its dbname");
	cr_assert(asprintf(&dsn, "%.*s/%s", (int)(slash - base), base, name) >
		  0);
	return dsn;
}

Test(migrate, applies_schema_once)
{
	PGconn *admin;
	char db[64], *dsn, *out, *sql, *n, *schema;
	char *migrate = inst("INSTALL_DATADIR", "apphost/migrate");
	int rc;

	rs_require_servers();
	admin = rs_pg();
	cr_assert(admin != NULL);
	dsn = fresh_db(admin, db, sizeof(db));
	schema = inst("INSTALL_DATADIR", "apphost/schema");
	rc = sh(&out, "APPHOST_POSTGRES_DSN='%s' APPHOST_SCHEMA_DIR='%s' '%s'",
		dsn, schema, migrate);
	cr_expect(rc == 0, "migrate: exit %d\n%s", rc, out);
	cr_expect(strstr(out, "applied 001_runtime_records") != NULL, "%s",
		  out);
	free(out);
	rc = sh(&out, "APPHOST_POSTGRES_DSN='%s' '%s' --schema-dir '%s'", dsn,
		migrate, schema);
	cr_expect(rc == 0 && strstr(out, "nothing to apply") != NULL,
		  "second run: exit %d\n%s", rc, out);
	free(out);
	/* Every installed file is recorded. */
	rc = sh(&out, "ls '%s' | grep -c '^[0-9][0-9][0-9]_.*\\.sql$'", schema);
	cr_assert(rc == 0, "no migrations installed in %s", schema);
	free(schema);
	chomp(out);
	{
		PGconn *c = PQconnectdb(dsn);

		cr_assert(PQstatus(c) == CONNECTION_OK, "%s",
			  PQerrorMessage(c));
		n = th_sql_value(c, "SELECT count(*) FROM schema_migrations",
				 NULL);
		cr_expect_str_eq(n, out, "recorded %s of %s migrations", n,
				 out);
		free(n);
		free(th_sql_value(c, "SELECT count(*) FROM runtime_records",
				  NULL));
		PQfinish(c);
	}
	free(out);
	cr_assert(asprintf(&sql, "DROP DATABASE %s", db) > 0);
	th_sql(admin, sql, NULL);
	free(sql);
	PQfinish(admin);
	free(dsn);
	free(migrate);
}

/* Without --schema-dir or APPHOST_SCHEMA_DIR: the installed schema. */
Test(migrate, default_schema_dir)
{
	char *migrate = inst("INSTALL_DATADIR", "apphost/migrate"), *out;
	char *want = final_path("INSTALL_DATADIR", "apphost/schema");

	cr_assert(sh(&out, "'%s' --help", migrate) == 0, "%s", out);
	cr_expect(strstr(out, want) != NULL, "--help does not name %s:\n%s",
		  want, out);
	free(out);
	free(want);
	free(migrate);
}

/* The DSN never goes on a command line: an argument is refused unread. */
Test(migrate, refuses_dsn_argument)
{
	char *migrate = inst("INSTALL_DATADIR", "apphost/migrate"), *out;
	int rc =
	    sh(&out, "'%s' 'postgresql://u:s3cret@127.0.0.1:1/db'", migrate);

	cr_expect_eq(rc, 2, "%s", out);
	cr_expect(strstr(out, "APPHOST_POSTGRES_DSN") != NULL, "%s", out);
	cr_expect(strstr(out, "s3cret") == NULL, "echoed the password: %s",
		  out);
	free(out);
	free(migrate);
}

/* A connection failure names the DSN without its password. */
Test(migrate, connect_failure_redacted)
{
	char *migrate = inst("INSTALL_DATADIR", "apphost/migrate"), *out;
	char *schema = inst("INSTALL_DATADIR", "apphost/schema");
	int rc = sh(&out,
		    "APPHOST_POSTGRES_DSN='postgresql://u:s3cret@127.0.0.1:1/"
		    "db?connect_timeout=2' '%s' --schema-dir '%s'",
		    migrate, schema);

	cr_expect_eq(rc, 1, "%s", out);
	cr_expect(strstr(out, "cannot connect to PostgreSQL") != NULL, "%s",
		  out);
	cr_expect(strstr(out, "s3cret") == NULL, "password in output: %s", out);
	free(out);
	free(schema);
	free(migrate);
}

/* ---- the SDK: examples/heartbeat built from the DESTDIR alone ---- */

/*
 * Copy apphost's .pc files to dir with their prefix moved into the
 * DESTDIR (what PKG_CONFIG_SYSROOT_DIR would do, but for these files only:
 * hiredis and libpq stay where the system has them).
 */
static void relocated_pc(const char *dir)
{
	char *pcdir = inst("INSTALL_LIBDIR", "pkgconfig"), *out;
	int rc =
	    sh(&out,
	       "for f in '%s'/apphost*.pc; do sed 's|^prefix=%s$|prefix=%s%s|' "
	       "\"$f\" > '%s'/\"${f##*/}\" || exit 1; done",
	       pcdir, env_req("INSTALL_PREFIX"), env_req("INSTALL_DESTDIR"),
	       env_req("INSTALL_PREFIX"), dir);

	cr_assert(rc == 0, "%s", out);
	free(out);
	free(pcdir);
}

Test(sdk, example_heartbeat_builds_and_passes, .timeout = 240)
{
	char *dir = tmpdir(), *out;
	const char *san = getenv("TEST_B_SANITIZE");
	char opts[256] = "";
	int rc;

	if (san != NULL && san[0] != '\0' && strcmp(san, "none") != 0)
		snprintf(opts, sizeof(opts), "-Db_sanitize=%s -Db_lundef=false",
			 san);
	relocated_pc(dir);
	rc = sh(&out,
		"cp -r '%s' '%s/src' && cd '%s' && PKG_CONFIG_PATH='%s' "
		"'%s' setup build src -Dwerror=true -Dtests=enabled %s",
		env_req("TEST_EXAMPLE_DIR"), dir, dir, dir,
		env_req("TEST_MESON"), opts);
	cr_assert(rc == 0, "meson setup of the example failed:\n%s", out);
	free(out);
	rc = sh(&out, "'%s' compile -C '%s/build'", env_req("TEST_MESON"), dir);
	cr_assert(rc == 0, "the example does not build:\n%s", out);
	free(out);
	/* BXFI_MAP: this Criterion worker's own map; a nested Criterion
	 * binary that sees it takes itself for a worker and aborts. */
	rc = sh(&out,
		"unset BXFI_MAP; '%s' test -C '%s/build' --print-errorlogs",
		env_req("TEST_MESON"), dir);
	cr_assert(rc == 0, "the example's tests failed:\n%s", out);
	free(out);
	free(dir);
}
