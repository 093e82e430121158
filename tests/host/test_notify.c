/*
 * test_notify.c -- host/notify.c without the binary: what apphost_notify
 * sends and refuses, WATCHDOG_USEC / WATCHDOG_PID, and that without
 * NOTIFY_SOCKET the notifier adds nothing to the loop. (The install suite
 * checks the datagrams of a running apphost.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

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
