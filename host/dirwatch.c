/* dirwatch.c -- see dirwatch.h. */
#include "dirwatch.h"

#include <stdlib.h>
#include <string.h>

#include <apphost/component.h>

#include "path.h"

/* One watched file: where its events come from, and its debounce. */
struct file {
	struct apphost_dirwatch *dw;
	size_t id;
	char *dir[2];	  /* the path's directory, the target's (or NULL) */
	char *base[2];	  /* file names in those directories */
	uv_timer_t timer; /* debounce */
};

/* One watched directory. */
struct watch {
	uv_fs_event_t ev;
	struct apphost_dirwatch *dw;
	char *dir;
};

struct apphost_dirwatch {
	uv_loop_t *loop;
	uint64_t debounce_ms;
	struct apphost_dirwatch_cb cb;
	struct file **files; /* each at a fixed address: its timer is */
	size_t nfiles;
	struct watch **watches;
	size_t nwatches;
	size_t open; /* handles initialised and not yet closed back */
};

int apphost_dirwatch_new(struct apphost_dirwatch **out, uv_loop_t *loop,
			 uint64_t debounce_ms,
			 const struct apphost_dirwatch_cb *cb)
{
	struct apphost_dirwatch *dw = calloc(1, sizeof(*dw));

	*out = NULL;
	if (dw == NULL)
		return APPHOST_ENOMEM;
	dw->loop = loop;
	dw->debounce_ms = debounce_ms;
	dw->cb = *cb;
	*out = dw;
	return 0;
}

static void on_debounce(uv_timer_t *t)
{
	struct file *f = t->data;

	f->dw->cb.changed(f->dw->cb.arg, f->id);
}

void apphost_dirwatch_dispatch(struct apphost_dirwatch *dw, const char *dir,
			       const char *name)
{
	for (size_t i = 0; i < dw->nfiles; i++) {
		struct file *f = dw->files[i];

		for (int k = 0; k < 2; k++)
			if (f->dir[k] != NULL && strcmp(f->dir[k], dir) == 0 &&
			    strcmp(f->base[k], name) == 0)
				uv_timer_start(&f->timer, on_debounce,
					       dw->debounce_ms, 0);
	}
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events,
			int status)
{
	struct watch *w = h->data;
	struct apphost_dirwatch *dw = w->dw;

	if (status < 0) {
		dw->cb.failed(dw->cb.arg, w->dir, status, false);
		return;
	}
	if (filename == NULL)
		return;
	apphost_dirwatch_dispatch(dw, w->dir, filename);
}

/* Watch `dir` unless already watched. 0 or APPHOST_ENOMEM. */
static int watch_dir(struct apphost_dirwatch *dw, const char *dir)
{
	struct watch *w, **nv;
	int rc;

	for (size_t i = 0; i < dw->nwatches; i++)
		if (strcmp(dw->watches[i]->dir, dir) == 0)
			return 0;
	nv = realloc(dw->watches, (dw->nwatches + 1) * sizeof(*nv));
	if (nv == NULL)
		return APPHOST_ENOMEM;
	dw->watches = nv;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->dir = strdup(dir)) == NULL) {
		free(w);
		return APPHOST_ENOMEM;
	}
	w->dw = dw;
	w->ev.data = w;
	uv_fs_event_init(dw->loop, &w->ev);
	dw->open++;
	dw->watches[dw->nwatches++] = w;
	rc = uv_fs_event_start(&w->ev, on_fs_event, dir, 0);
	if (rc < 0)
		dw->cb.failed(dw->cb.arg, dir, rc, true);
	return 0;
}

int apphost_dirwatch_add(struct apphost_dirwatch *dw, const char *path,
			 size_t id)
{
	struct file *f, **nv;
	char *real;
	int rc = 0;

	nv = realloc(dw->files, (dw->nfiles + 1) * sizeof(*nv));
	if (nv == NULL)
		return APPHOST_ENOMEM;
	dw->files = nv;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return APPHOST_ENOMEM;
	f->dw = dw;
	f->id = id;
	uv_timer_init(dw->loop, &f->timer);
	f->timer.data = f;
	dw->open++;
	dw->files[dw->nfiles++] = f;
	real = realpath(path, NULL);
	if (apphost_path_split(path, &f->dir[0], &f->base[0]) < 0 ||
	    (real != NULL && strcmp(real, path) != 0 &&
	     apphost_path_split(real, &f->dir[1], &f->base[1]) < 0))
		rc = APPHOST_ENOMEM;
	free(real);
	for (int k = 0; rc == 0 && k < 2; k++)
		if (f->dir[k] != NULL)
			rc = watch_dir(dw, f->dir[k]);
	return rc;
}

void apphost_dirwatch_cancel(struct apphost_dirwatch *dw)
{
	for (size_t i = 0; i < dw->nfiles; i++)
		uv_timer_stop(&dw->files[i]->timer);
}

/* Free dw once its last handle has closed. */
static void closed_one(struct apphost_dirwatch *dw)
{
	if (--dw->open > 0)
		return;
	for (size_t i = 0; i < dw->nfiles; i++) {
		for (int k = 0; k < 2; k++) {
			free(dw->files[i]->dir[k]);
			free(dw->files[i]->base[k]);
		}
		free(dw->files[i]);
	}
	free(dw->files);
	free(dw);
}

static void on_watch_closed(uv_handle_t *h)
{
	struct watch *w = h->data;
	struct apphost_dirwatch *dw = w->dw;

	free(w->dir);
	free(w);
	closed_one(dw);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct file *f = h->data;

	closed_one(f->dw);
}

void apphost_dirwatch_free(struct apphost_dirwatch *dw)
{
	if (dw == NULL)
		return;
	if (dw->open == 0) {
		dw->open = 1;
		closed_one(dw);
		return;
	}
	for (size_t i = 0; i < dw->nwatches; i++)
		uv_close((uv_handle_t *)&dw->watches[i]->ev, on_watch_closed);
	free(dw->watches);
	dw->watches = NULL;
	dw->nwatches = 0;
	for (size_t i = 0; i < dw->nfiles; i++)
		uv_close((uv_handle_t *)&dw->files[i]->timer, on_timer_closed);
}
