/* run.c -- see run.h. */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "status.h"

struct run {
	uv_signal_t sigint, sigterm, sighup;
	struct apphost_comp_list *list;
	const struct apphost_ctx *ctx;
	const struct apphost_run_hooks *hooks;
	struct apphost_notifier *notifier; /* systemd; NULL without it */
	int stop_signal;
};

/* A second SIGINT/SIGTERM while stopping: leave now. */
static void exit_now(int sig)
{
	apphost_log_signal_safe(APPHOST_LOG_ERROR,
				sig == SIGINT ? "second signal while stopping, "
						"exiting now signal=SIGINT"
					      : "second signal while stopping, "
						"exiting now signal=SIGTERM");
	_exit(128 + sig);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
	struct run *r = h->data;
	struct sigaction sa;

	r->stop_signal = signum;
	apphost_status_set_stopping(); /* /readyz: 503 from now */
	apphost_notifier_stopping(r->notifier);
	/* Closing the watchers restores SIG_DFL; then take them over. */
	uv_close((uv_handle_t *)&r->sigint, NULL);
	uv_close((uv_handle_t *)&r->sigterm, NULL);
	uv_close((uv_handle_t *)&r->sighup, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = exit_now;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* SIGHUP is SIG_DFL now too, which would kill the host mid-stop
	 * (a terminal hang-up, systemd's ExecReload): ignore it. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	apphost_log(APPHOST_LOG_INFO, NULL, "stopping",
		    "signal=%s components=%zu timeout_ms=%u",
		    signum == SIGINT ? "SIGINT" : "SIGTERM", r->list->n,
		    r->ctx->shutdown_timeout_ms);
	if (r->hooks != NULL && r->hooks->on_stop != NULL)
		r->hooks->on_stop(h->loop, r->hooks->arg);
	uv_stop(h->loop);
}

static void on_sighup(uv_signal_t *h, int signum)
{
	struct run *r = h->data;

	(void)signum;
	if (r->hooks != NULL && r->hooks->on_sighup != NULL) {
		/* systemd's ExecReload waits for READY=1 after RELOADING=1 */
		apphost_notifier_reloading(r->notifier);
		r->hooks->on_sighup(h->loop, r->list, r->ctx, r->hooks->arg);
		apphost_notifier_reloaded(r->notifier);
		return;
	}
	apphost_log(APPHOST_LOG_WARN, NULL,
		    "SIGHUP ignored: hot swap not enabled", NULL);
}

int apphost_run(struct apphost_comp_list *l, const struct apphost_ctx *ctx,
		const struct apphost_run_hooks *hooks)
{
	uv_loop_t *loop = uv_default_loop();
	struct run r = {.list = l, .ctx = ctx, .hooks = hooks};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (loop == NULL)
		return APPHOST_ENOMEM;
	uv_signal_init(loop, &r.sigint);
	uv_signal_init(loop, &r.sigterm);
	uv_signal_init(loop, &r.sighup);
	r.sigint.data = r.sigterm.data = r.sighup.data = &r;
	rc = uv_signal_start(&r.sigint, on_stop_signal, SIGINT);
	if (rc == 0)
		rc = uv_signal_start(&r.sigterm, on_stop_signal, SIGTERM);
	if (rc == 0)
		rc = uv_signal_start(&r.sighup, on_sighup, SIGHUP);
	if (rc != 0) {
		apphost_log(APPHOST_LOG_ERROR, NULL, "cannot watch signals",
			    "err=\"%s\"", uv_strerror(rc));
		uv_close((uv_handle_t *)&r.sigint, NULL);
		uv_close((uv_handle_t *)&r.sigterm, NULL);
		uv_close((uv_handle_t *)&r.sighup, NULL);
		uv_run(loop, UV_RUN_DEFAULT);
		uv_loop_close(loop);
		apphost_lifecycle_stop_all(l, ctx->shutdown_timeout_ms);
		return APPHOST_EIO;
	}
	apphost_log(APPHOST_LOG_INFO, NULL, "running", "components=%zu pid=%ld",
		    l->n, (long)getpid());
	if (hooks != NULL && hooks->on_start != NULL)
		hooks->on_start(loop, l, ctx, hooks->arg);
	rc = apphost_notifier_start(loop, &r.notifier);
	if (rc < 0)
		apphost_log(
		    APPHOST_LOG_WARN, NULL, "systemd notification not sent",
		    "socket=\"%s\" err=\"%s\"", getenv("NOTIFY_SOCKET"),
		    rc == APPHOST_EIO ? strerror(errno)
				      : "not an absolute path or @name");
	uv_run(loop, UV_RUN_DEFAULT);

	rc = apphost_lifecycle_stop_all(l, ctx->shutdown_timeout_ms);
	/* Let the closed signal watchers finish, then release the loop. */
	uv_run(loop, UV_RUN_NOWAIT);
	uv_loop_close(loop);
	return rc;
}
