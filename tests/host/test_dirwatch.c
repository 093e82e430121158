/* test_dirwatch.c -- apphost_dirwatch on a private loop: events routed by
 * directory and name, one debounced call per burst, cancel, a symlinked
 * directory, a directory that cannot be watched, and real file changes. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "dirwatch.h"
#include "helpers.h"

#define DEBOUNCE_MS 20
#define WAIT_MS	    5000 /* generous: a call that is owed comes long before */

struct seen {
	size_t calls[4];  /* changed, per id */
	size_t ncalls;	  /* all of them */
	size_t failed;	  /* failed calls */
	int last_err;	  /* their last uv code */
	bool last_at_add; /* and where */
	uv_loop_t *loop;
	size_t stop_after; /* stop the loop at this many calls */
};

static void on_changed(void *arg, size_t id)
{
	struct seen *s = arg;

	cr_assert_lt(id, 4);
	s->calls[id]++;
	if (++s->ncalls >= s->stop_after)
		uv_stop(s->loop);
}

static void on_failed(void *arg, const char *dir, int uv_err, bool at_add)
{
	struct seen *s = arg;

	s->failed++;
	s->last_err = uv_err;
	s->last_at_add = at_add;
}

static void on_deadline(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Run the loop until `calls` changed calls were seen or `ms` passed. */
static void run_until(struct seen *s, size_t calls, uint64_t ms)
{
	uv_timer_t deadline;

	s->stop_after = calls;
	uv_timer_init(s->loop, &deadline);
	uv_timer_start(&deadline, on_deadline, ms, 0);
	uv_run(s->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(s->loop, UV_RUN_NOWAIT);
}

static struct apphost_dirwatch *new_watch(uv_loop_t *loop, struct seen *s)
{
	const struct apphost_dirwatch_cb cb = {
	    .changed = on_changed, .failed = on_failed, .arg = s};
	struct apphost_dirwatch *dw = NULL;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	cr_assert_eq(uv_loop_init(loop), 0);
	cr_assert_eq(apphost_dirwatch_new(&dw, loop, DEBOUNCE_MS, &cb), 0);
	cr_assert_not_null(dw);
	return dw;
}

/* Free dw and close the loop: every handle must be closed back. */
static void end_watch(uv_loop_t *loop, struct apphost_dirwatch *dw)
{
	apphost_dirwatch_free(dw);
	uv_run(loop, UV_RUN_NOWAIT);
	cr_assert_eq(uv_loop_close(loop), 0, "a handle was left open");
}

/* Each test: a watcher on its own loop, freed and closed after it. */
static uv_loop_t t_loop;
static struct seen t_seen;
static struct apphost_dirwatch *t_dw;

static void setup(void)
{
	t_dw = new_watch(&t_loop, &t_seen);
}

static void teardown(void)
{
	end_watch(&t_loop, t_dw);
}

TestSuite(dirwatch, .init = setup, .fini = teardown);

/* A new directory `name` in this test's temporary directory. */
static void make_dir(char *dir, size_t cap, const char *name)
{
	snprintf(dir, cap, "%s/%s", tmp_dir(), name);
	cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s", dir);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* One event for dir/name; wait for file `id`'s call, its `want`th. */
static void poke(struct apphost_dirwatch *dw, struct seen *s, const char *dir,
		 const char *name, size_t id, size_t want)
{
	apphost_dirwatch_dispatch(dw, dir, name);
	run_until(s, s->ncalls + 1, WAIT_MS);
	cr_assert_eq(s->calls[id], want, "%s/%s: %zu calls, want %zu", dir,
		     name, s->calls[id], want);
}

Test(dirwatch, burst_gives_one_call_for_that_file)
{
	char dir[600], a[700], b[700];

	make_dir(dir, sizeof(dir), "burst");
	snprintf(a, sizeof(a), "%s/a.so", dir);
	snprintf(b, sizeof(b), "%s/b.so", dir);
	cr_assert_eq(apphost_dirwatch_add(t_dw, a, 0), 0);
	cr_assert_eq(apphost_dirwatch_add(t_dw, b, 1), 0);
	cr_assert_eq(t_seen.failed, 0);
	for (int i = 0; i < 5; i++)
		apphost_dirwatch_dispatch(t_dw, dir, "a.so");
	apphost_dirwatch_dispatch(t_dw, dir, "other.so");
	apphost_dirwatch_dispatch(t_dw, "/elsewhere", "b.so");
	run_until(&t_seen, 1, WAIT_MS);
	cr_assert_eq(t_seen.calls[0], 1);
	/* anything owed would have come within the debounce; wait 10 of it */
	run_until(&t_seen, 2, 10 * DEBOUNCE_MS);
	cr_assert_eq(t_seen.calls[0], 1);
	cr_assert_eq(t_seen.calls[1], 0,
		     "an event for another name or directory");
}

Test(dirwatch, cancel_drops_pending_events)
{
	char dir[600], a[700];

	make_dir(dir, sizeof(dir), "cancel");
	snprintf(a, sizeof(a), "%s/a.so", dir);
	cr_assert_eq(apphost_dirwatch_add(t_dw, a, 0), 0);
	apphost_dirwatch_dispatch(t_dw, dir, "a.so");
	apphost_dirwatch_cancel(t_dw);
	run_until(&t_seen, 1, 10 * DEBOUNCE_MS);
	cr_assert_eq(t_seen.ncalls, 0);
	poke(t_dw, &t_seen, dir, "a.so", 0, 1); /* and it still watches */
}

/* A path through a symlinked directory: events in either directory. */
Test(dirwatch, symlinked_directory_is_watched_on_both_sides)
{
	char real[600], lnk[600], path[700];

	make_dir(real, sizeof(real), "real");
	snprintf(lnk, sizeof(lnk), "%s/link", tmp_dir());
	snprintf(path, sizeof(path), "%s/c.so", lnk);
	cr_assert_eq(symlink(real, lnk), 0);
	write_text(path, "x");
	cr_assert_eq(apphost_dirwatch_add(t_dw, path, 2), 0);
	poke(t_dw, &t_seen, real, "c.so", 2, 1);
	poke(t_dw, &t_seen, lnk, "c.so", 2, 2);
}

Test(dirwatch, missing_directory_is_reported_not_fatal)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/absent/d.so", tmp_dir());
	cr_assert_eq(apphost_dirwatch_add(t_dw, path, 0), 0);
	cr_assert_eq(t_seen.failed, 1);
	cr_assert_eq(t_seen.last_err, UV_ENOENT, "%s",
		     uv_strerror(t_seen.last_err));
	cr_assert(t_seen.last_at_add);
}

/*
 * Wait for a call after a change, then let the burst settle (a loaded
 * machine may split one burst in two): the number of calls so far.
 */
static size_t settle(struct seen *s, size_t before)
{
	run_until(s, before + 1, WAIT_MS);
	run_until(s, (size_t)-1, 5 * DEBOUNCE_MS);
	return s->calls[0];
}

/* The ways builds replace a file, seen through the kernel. */
Test(dirwatch, real_changes_are_seen)
{
	char dir[600], a[700], tmp[700];
	size_t n;

	make_dir(dir, sizeof(dir), "real-changes");
	snprintf(a, sizeof(a), "%s/a.so", dir);
	snprintf(tmp, sizeof(tmp), "%s/.a.so.tmp", dir);
	write_text(a, "one");
	cr_assert_eq(apphost_dirwatch_add(t_dw, a, 0), 0);
	cr_assert_eq(t_seen.failed, 0);

	write_text(a, "two"); /* in place */
	n = settle(&t_seen, 0);
	cr_assert_geq(n, 1, "in-place write not seen");

	write_text(tmp, "three"); /* rename over it */
	cr_assert_eq(rename(tmp, a), 0);
	cr_assert_gt(settle(&t_seen, n), n, "rename over the file not seen");
	n = t_seen.calls[0];

	cr_assert_eq(unlink(a), 0); /* unlink + create */
	write_text(a, "four");
	cr_assert_gt(settle(&t_seen, n), n, "unlink + create not seen");
}

Test(dirwatch, free_of_null_and_of_an_empty_watch)
{

	apphost_dirwatch_free(NULL);
}
