/*
 * notify.h -- systemd's service notification protocol (sd_notify(3)),
 * implemented directly: one datagram of "KEY=VALUE\n" lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for an
 * abstract socket). Without NOTIFY_SOCKET every call does nothing.
 *
 * Why not libsystemd: the protocol is a documented, stable interface of
 * a few lines, and doing it here keeps one behaviour in every build (no
 * optional dependency that changes what a binary does).
 *
 * What the host sends (run.c): READY=1 once every component started,
 * RELOADING=1 with MONOTONIC_USEC= when a SIGHUP hot swap begins and
 * READY=1 again when it is done (kept or rolled back), STOPPING=1 when
 * stop begins, STATUS= when the readiness text changes,
 * WATCHDOG=1 every WATCHDOG_USEC / 2 while WATCHDOG_USEC is set (and
 * WATCHDOG_PID, when set, is this process).
 */
#ifndef APPHOST_HOST_NOTIFY_H
#define APPHOST_HOST_NOTIFY_H

#include <stdint.h>

#include <apphost/component.h>
#include <uv.h>

/*
 * Send `state` ("READY=1\nSTATUS=running") to $NOTIFY_SOCKET. Returns 1
 * when sent, 0 when NOTIFY_SOCKET is unset or empty, APPHOST_EINVAL when
 * it names no usable address (relative path, too long), APPHOST_EIO when
 * the send failed (errno kept). Does not log. Any thread.
 */
int apphost_notify(const char *state);

/*
 * The watchdog interval systemd asked for, in microseconds: WATCHDOG_USEC
 * when it parses as a positive number and WATCHDOG_PID is unset or this
 * process; else 0 (no watchdog). Any thread.
 */
uint64_t apphost_notify_watchdog_usec(void);

/*
 * The notifier of the main loop: sends READY=1 and the first STATUS=,
 * then every second a STATUS= when the host's readiness text changed and,
 * with a watchdog, WATCHDOG=1 every half interval. Without NOTIFY_SOCKET
 * it adds nothing to the loop (*out NULL, returns 0). Returns
 * apphost_notify()'s error when READY=1 could not be sent (nothing added;
 * the caller logs it), APPHOST_ENOMEM. apphost_notifier_stopping() sends
 * STOPPING=1 and closes its handles (the loop can then end); call it
 * before the loop's last run. Main thread only.
 */
struct apphost_notifier;

int apphost_notifier_start(uv_loop_t *loop, struct apphost_notifier **out);
void apphost_notifier_stopping(struct apphost_notifier *n);

/*
 * sd_notify(3)'s reload protocol, around a reload (a SIGHUP hot swap):
 * apphost_notifier_reloading() sends RELOADING=1 with MONOTONIC_USEC= (now,
 * CLOCK_MONOTONIC in microseconds), apphost_notifier_reloaded() READY=1
 * with the STATUS= of now, whatever the reload's outcome; both with
 * WATCHDOG=1 when the watchdog is on (the swap holds the loop that pings
 * it). n NULL (no
 * NOTIFY_SOCKET): nothing. Main thread only.
 */
void apphost_notifier_reloading(struct apphost_notifier *n);
void apphost_notifier_reloaded(struct apphost_notifier *n);

#endif
