/*
 * run.h -- the host's main loop: a libuv default loop on the main thread
 * that waits for signals while the components work on their own threads.
 *
 *   SIGINT, SIGTERM  stop every component in reverse order within
 *                    ctx->shutdown_timeout_ms, then return.
 *   the same again   while stopping: exit at once with 128 + signal
 *                    (130 for SIGINT, 143 for SIGTERM), no cleanup.
 *   SIGHUP           hooks->on_sighup (hot swap plugs in here), between
 *                    systemd's RELOADING=1 and READY=1 (notify.h); without
 *                    a hook it logs "hot swap not enabled" and notifies
 *                    nothing; ignored once stopping began.
 *   SIGPIPE          ignored (hiredis writes to closed sockets).
 */
#ifndef APPHOST_HOST_RUN_H
#define APPHOST_HOST_RUN_H

#include <uv.h>

#include "lifecycle.h"
#include "services.h"

struct apphost_run_hooks {
	/*
	 * Called on the main thread from the loop on SIGHUP (and usable for
	 * file-watch events later). `loop` is the running loop, `l` the live
	 * component list (the hook may replace entries: hot swap).
	 */
	void (*on_sighup)(uv_loop_t *loop, struct apphost_comp_list *l,
			  const struct apphost_ctx *ctx, void *arg);
	void *arg;
	/*
	 * Optional (NULL: none). on_start: called once on the main thread
	 * before the loop runs (hot swap starts its file watchers here).
	 * on_stop: called on SIGINT/SIGTERM before the loop ends and the
	 * components stop; it must close every handle it added to `loop`.
	 */
	void (*on_start)(uv_loop_t *loop, struct apphost_comp_list *l,
			 const struct apphost_ctx *ctx, void *arg);
	void (*on_stop)(uv_loop_t *loop, void *arg);
};

/*
 * Run the loop for the started components in `l` until SIGINT/SIGTERM,
 * then stop them all. Returns 0 after a clean stop, APPHOST_ETIMEDOUT when
 * a stop overran, another negative code on a stop or loop failure.
 * `hooks` may be NULL. Main thread only.
 */
int apphost_run(struct apphost_comp_list *l, const struct apphost_ctx *ctx,
		const struct apphost_run_hooks *hooks);

#endif
