/* notify.c -- see notify.h. */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "apphost/component.h"
#include "clock.h"
#include "status.h"

int apphost_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n;
	socklen_t len;
	ssize_t sent;
	int fd, saved;

	if (path == NULL || path[0] == '\0')
		return 0;
	n = strlen(path);
	/* An abstract name may use the whole sun_path; a file path needs
	 * room for its NUL. */
	if ((path[0] != '/' && path[0] != '@') || n > sizeof(sa.sun_path) ||
	    (path[0] == '/' && n == sizeof(sa.sun_path)))
		return APPHOST_EINVAL;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			  (path[0] == '/' ? 1 : 0));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return APPHOST_EIO;
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		      (struct sockaddr *)&sa, len);
	saved = errno;
	close(fd);
	errno = saved;
	return sent < 0 ? APPHOST_EIO : 1;
}

uint64_t apphost_notify_watchdog_usec(void)
{
	const char *us = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (us == NULL || us[0] < '0' || us[0] > '9')
		return 0;
	if (pid != NULL && pid[0] != '\0') {
		errno = 0;
		v = strtoull(pid, &end, 10);
		if (errno != 0 || *end != '\0' ||
		    v != (unsigned long long)getpid())
			return 0; /* meant for another process */
	}
	errno = 0;
	v = strtoull(us, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return (uint64_t)v;
}

/* ---- the main loop's notifier ------------------------------------------ */

#define STATUS_MAX 512

struct apphost_notifier {
	uv_timer_t timer;
	bool watchdog;
	char status[STATUS_MAX]; /* the STATUS= last sent */
};

/*
 * The host's readiness as one line, from the reasons and notes /readyz
 * shows: "ready", "ready: health_events: leader", "not ready: a; b".
 */
static void status_line(char *out, size_t cap)
{
	struct apphost_status st;

	apphost_status_get(&st);
	snprintf(out, cap, "%s", st.ok ? "ready" : "not ready");
	for (size_t i = 0; i < st.n; i++) {
		size_t used = strlen(out);

		snprintf(out + used, cap - used, "%s%s%s%s", i ? "; " : ": ",
			 st.line[i].who, st.line[i].who[0] != '\0' ? ": " : "",
			 st.line[i].code);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct apphost_notifier *n = t->data;
	char now[STATUS_MAX], msg[STATUS_MAX + 32];

	status_line(now, sizeof(now));
	msg[0] = '\0';
	if (strcmp(now, n->status) != 0) {
		snprintf(n->status, sizeof(n->status), "%s", now);
		snprintf(msg, sizeof(msg), "STATUS=%s\n", now);
	}
	if (n->watchdog)
		strcat(msg, "WATCHDOG=1\n");
	if (msg[0] != '\0')
		(void)apphost_notify(msg);
}

int apphost_notifier_start(uv_loop_t *loop, struct apphost_notifier **out)
{
	struct apphost_notifier *n;
	uint64_t wd = apphost_notify_watchdog_usec();
	uint64_t every_ms = 1000;
	char msg[STATUS_MAX + 32];
	const char *sock = getenv("NOTIFY_SOCKET");
	int rc;

	*out = NULL;
	if (sock == NULL || sock[0] == '\0')
		return 0;
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return APPHOST_ENOMEM;
	/* systemd's advice: ping at half the interval. */
	if (wd > 0) {
		n->watchdog = true;
		if (wd / 2000 < every_ms)
			every_ms = wd / 2000 > 0 ? wd / 2000 : 1;
	}
	status_line(n->status, sizeof(n->status));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s\n%s", n->status,
		 n->watchdog ? "WATCHDOG=1\n" : "");
	rc = apphost_notify(msg);
	if (rc < 0) {
		free(n);
		return rc;
	}
	uv_timer_init(loop, &n->timer);
	n->timer.data = n;
	uv_timer_start(&n->timer, on_tick, every_ms, every_ms);
	*out = n;
	return 0;
}

void apphost_notifier_reloading(struct apphost_notifier *n)
{
	char msg[80];

	if (n == NULL)
		return;
	/* The swap holds the main loop, where the watchdog ticks: ping it
	 * here and when done, so the swap has a whole WatchdogSec. */
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\n%s",
		 (unsigned long long)(apphost_now_ns() / 1000u),
		 n->watchdog ? "WATCHDOG=1\n" : "");
	(void)apphost_notify(msg);
}

void apphost_notifier_reloaded(struct apphost_notifier *n)
{
	char msg[STATUS_MAX + 32];

	if (n == NULL)
		return;
	status_line(n->status, sizeof(n->status));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s\n%s", n->status,
		 n->watchdog ? "WATCHDOG=1\n" : "");
	(void)apphost_notify(msg);
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void apphost_notifier_stopping(struct apphost_notifier *n)
{
	if (n == NULL)
		return;
	(void)apphost_notify("STOPPING=1\nSTATUS=stopping\n");
	uv_close((uv_handle_t *)&n->timer, on_closed);
}
