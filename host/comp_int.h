/*
 * comp_int.h -- the fields of struct apphost_comp (loader.h). Private to
 * loader.c, which fills the load-time fields, and lifecycle.c, which owns
 * the rest; everyone else uses their functions.
 */
#ifndef APPHOST_HOST_COMP_INT_H
#define APPHOST_HOST_COMP_INT_H

#include <sys/types.h>

#include <apphost/component.h>

#include "loader.h"
#include "services.h"

struct apphost_comp {
	/* immutable once apphost_comp_load returned (loader.c) */
	char *path;	/* as configured, used in messages */
	char *realpath; /* canonical path of the file that was dlopen()ed */
	void *handle;	/* dlopen handle */
	int fd;		/* the file, open while loaded (-1: none) */
	dev_t dev;	/* its inode, to refuse a file listed twice */
	ino_t ino;
	const apphost_magic *magic;
	char name[64];	  /* magic->name, copied */
	char version[64]; /* magic->version, copied */

	apphost_init_fn init;
	apphost_start_fn start;
	apphost_stop_fn stop;
	apphost_export_fn export_state; /* NULL unless exported */
	apphost_import_fn import_state; /* NULL unless exported */
	apphost_check_fn check;		/* NULL unless exported (1.3) */

	/* lifecycle.c only (main thread); LOADED (0) from the load */
	enum apphost_comp_state state;
	void *cstate; /* the component's own state from init */

	struct apphost_svc_host svc_host; /* svc.host points here */
	apphost_services svc;
};

#endif
