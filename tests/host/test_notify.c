/*
 * test_notify.c -- host/notify.c without the binary: what apphost_notify
 * sends and refuses, WATCHDOG_USEC / WATCHDOG_PID, and that without
 * NOTIFY_SOCKET the notifier adds nothing to the loop. (The install suite
 * checks the datagrams of a running apphost.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "run.h"

static int listen_at(const char *name, bool abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	memcpy(sa.sun_path, name, n);
	if (abstract)
		sa.sun_path[0] = '\0';
	cr_assert(bind(fd, (struct sockaddr *)&sa,
		       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
				   !abstract)) == 0,
		  "bind %s: %s", name, strerror(errno));
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	cr_assert(n > 0, "nothing received: %s", strerror(errno));
	buf[n] = '\0';
	cr_assert_str_eq(buf, want);
}

Test(notify, unset_sends_nothing_and_adds_nothing)
{
	struct apphost_notifier *n = (void *)1;
	uv_loop_t loop;

	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(apphost_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	cr_assert_eq(apphost_notify("READY=1"), 0);
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(apphost_notifier_start(&loop, &n), 0);
	cr_assert_null(n);
	cr_assert(!uv_loop_alive(&loop), "a handle was added");
	apphost_notifier_stopping(n); /* NULL: no-op */
	cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(notify, path_and_abstract_sockets)
{
	char path[108], name[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/apphost-notify-test.%ld",
		 (long)getpid());
	unlink(path);
	fd = listen_at(path, false);
	setenv("NOTIFY_SOCKET", path, 1);
	cr_assert_eq(apphost_notify("READY=1\nSTATUS=ready\n"), 1);
	expect_datagram(fd, "READY=1\nSTATUS=ready\n");
	close(fd);
	unlink(path);

	snprintf(name, sizeof(name), "@apphost-notify-test.%ld",
		 (long)getpid());
	fd = listen_at(name, true);
	setenv("NOTIFY_SOCKET", name, 1);
	cr_assert_eq(apphost_notify("STOPPING=1\n"), 1);
	expect_datagram(fd, "STOPPING=1\n");
	close(fd);
}

Test(notify, refuses_unusable_addresses)
{
	char longp[200];

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	cr_assert_eq(apphost_notify("READY=1"), APPHOST_EINVAL);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longp, 1);
	cr_assert_eq(apphost_notify("READY=1"), APPHOST_EINVAL);
	/* nobody listens there: the send fails, and says so */
	setenv("NOTIFY_SOCKET", "/nonexistent/apphost-notify", 1);
	cr_assert_eq(apphost_notify("READY=1"), APPHOST_EIO);
	cr_assert_eq(errno, ENOENT);
}

Test(notify, watchdog_usec_for_this_process)
{
	char pid[32];

	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	cr_assert_eq(apphost_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	cr_assert_eq(apphost_notify_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	cr_assert_eq(apphost_notify_watchdog_usec(), 30000000);
	setenv("WATCHDOG_PID", "1", 1);
	cr_assert_eq(apphost_notify_watchdog_usec(), 0, "meant for pid 1");
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "soon", 1);
	cr_assert_eq(apphost_notify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "-5", 1);
	cr_assert_eq(apphost_notify_watchdog_usec(), 0);
}

/* ---- SIGHUP under systemd: the reload protocol ---------------------------
 *
 * apphost_run in this (forked) test process, with a notify socket: a timer
 * raises SIGHUP and then SIGTERM. With a SIGHUP hook (hot swap) the host
 * sends RELOADING=1 with MONOTONIC_USEC before the hook runs and READY=1
 * once it returned; without one it sends neither.
 */

struct reload_run {
	int fd; /* the notify socket we listen on */
	uv_timer_t timer;
	int ticks;
	bool hooked;   /* on_sighup given */
	bool watchdog; /* WATCHDOG_USEC set (60 s: no tick within the run) */
	bool swapped;
	char before[512];   /* what had arrived when the hook ran */
	uint64_t hook_usec; /* CLOCK_MONOTONIC when the hook ran */
};

/* Every datagram waiting on fd, "|"-separated, into buf. */
static void drain(int fd, char *buf, size_t cap)
{
	size_t used = strlen(buf);
	ssize_t n;

	while (used + 2 < cap &&
	       (n = recv(fd, buf + used, cap - used - 2, MSG_DONTWAIT)) > 0) {
		used += (size_t)n;
		buf[used++] = '|';
		buf[used] = '\0';
	}
}

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void reload_tick(uv_timer_t *t)
{
	struct reload_run *rr = t->data;

	raise(rr->ticks++ == 0 ? SIGHUP : SIGTERM);
}

static void reload_start(uv_loop_t *loop, struct apphost_comp_list *l,
			 const struct apphost_ctx *ctx, void *arg)
{
	struct reload_run *rr = arg;

	(void)l;
	(void)ctx;
	uv_timer_init(loop, &rr->timer);
	rr->timer.data = rr;
	uv_timer_start(&rr->timer, reload_tick, 100, 200);
}

static void reload_sighup(uv_loop_t *loop, struct apphost_comp_list *l,
			  const struct apphost_ctx *ctx, void *arg)
{
	struct reload_run *rr = arg;

	(void)loop;
	(void)l;
	(void)ctx;
	rr->hook_usec = mono_usec();
	drain(rr->fd, rr->before, sizeof(rr->before));
	rr->swapped = true;
}

static void reload_stop(uv_loop_t *loop, void *arg)
{
	struct reload_run *rr = arg;

	(void)loop;
	uv_close((uv_handle_t *)&rr->timer, NULL);
}

/* Run the host until the timer's SIGTERM; what arrived after the hook
 * (or after SIGHUP without one) goes into after. */
static void run_reload(struct reload_run *rr, char *after, size_t cap)
{
	struct apphost_comp_list l = {0};
	const struct apphost_ctx ctx = {.shutdown_timeout_ms = 1000};
	struct apphost_run_hooks hooks = {
	    .on_start = reload_start, .on_stop = reload_stop, .arg = rr};
	char path[108];

	snprintf(path, sizeof(path), "/tmp/apphost-notify-reload.%ld",
		 (long)getpid());
	unlink(path);
	rr->fd = listen_at(path, false);
	setenv("NOTIFY_SOCKET", path, 1);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (rr->watchdog)
		setenv("WATCHDOG_USEC", "60000000", 1);
	if (rr->hooked)
		hooks.on_sighup = reload_sighup;
	after[0] = '\0';
	cr_assert_eq(apphost_run(&l, &ctx, &hooks), 0);
	drain(rr->fd, after, cap);
	close(rr->fd);
	unlink(path);
}

Test(notify, sighup_swap_sends_reloading_then_ready)
{
	static struct reload_run rr = {.hooked = true};
	char after[2048], *r, *m;
	unsigned long long usec;

	run_reload(&rr, after, sizeof(after));
	cr_assert(rr.swapped, "the SIGHUP hook did not run");
	/* READY=1 at start, then RELOADING=1 with the time, in one datagram,
	 * before the swap */
	r = strstr(rr.before, "RELOADING=1\n");
	cr_assert_not_null(r, "no RELOADING=1 before the swap: %s", rr.before);
	m = strstr(r, "MONOTONIC_USEC=");
	cr_assert_not_null(m, "no MONOTONIC_USEC with RELOADING=1: %s",
			   rr.before);
	cr_assert(strchr(r, '|') == NULL || m < strchr(r, '|'),
		  "MONOTONIC_USEC not in the RELOADING=1 datagram: %s",
		  rr.before);
	cr_assert_eq(sscanf(m, "MONOTONIC_USEC=%llu", &usec), 1);
	cr_assert(usec <= rr.hook_usec && usec + 1000000u > rr.hook_usec,
		  "MONOTONIC_USEC=%llu, the swap began at %llu", usec,
		  (unsigned long long)rr.hook_usec);
	/* and READY=1 once the swap is done, before STOPPING=1 */
	r = strstr(after, "READY=1\n");
	cr_assert_not_null(r, "no READY=1 after the swap: %s", after);
	m = strstr(after, "STOPPING=1\n");
	cr_assert(m == NULL || r < m, "READY=1 after STOPPING=1: %s", after);
}

/*
 * The swap runs on the main loop, so no watchdog tick comes while it
 * lasts: the reload's two datagrams ping the watchdog themselves, giving
 * the swap a whole WatchdogSec.
 */
Test(notify, sighup_swap_pings_the_watchdog)
{
	static struct reload_run rr = {.hooked = true, .watchdog = true};
	char after[2048], *r;

	run_reload(&rr, after, sizeof(after));
	unsetenv("WATCHDOG_USEC");
	cr_assert(rr.swapped, "the SIGHUP hook did not run");
	r = strstr(rr.before, "RELOADING=1\n");
	cr_assert_not_null(r, "no RELOADING=1 before the swap: %s", rr.before);
	cr_assert(strstr(r, "WATCHDOG=1\n") != NULL &&
		      (strchr(r, '|') == NULL ||
		       strstr(r, "WATCHDOG=1\n") < strchr(r, '|')),
		  "no WATCHDOG=1 with RELOADING=1: %s", rr.before);
	r = strstr(after, "READY=1\n");
	cr_assert(r != NULL && strstr(r, "WATCHDOG=1\n") != NULL &&
		      (strchr(r, '|') == NULL ||
		       strstr(r, "WATCHDOG=1\n") < strchr(r, '|')),
		  "no WATCHDOG=1 with the READY=1 after the swap: %s", after);
}

Test(notify, sighup_ignored_sends_nothing)
{
	static struct reload_run rr = {.hooked = false};
	char after[2048];

	run_reload(&rr, after, sizeof(after));
	cr_assert_null(strstr(after, "RELOADING=1"), "%s", after);
	/* the READY=1 of the start, and nothing like it after the SIGHUP */
	cr_assert_null(strstr(strstr(after, "READY=1") + 1, "READY=1"), "%s",
		       after);
}
