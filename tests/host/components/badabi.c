/* badabi.c -- a hand-built magic block with one field wrong, chosen at
 * build time: BAD_MAGIC, BAD_MAJOR, BAD_MINOR or BAD_SIZE. */
#include <apphost/component.h>

#ifndef BAD_MAGIC
#define BAD_MAGIC APPHOST_MAGIC
#endif
#ifndef BAD_MAJOR
#define BAD_MAJOR APPHOST_ABI_MAJOR
#endif
#ifndef BAD_MINOR
#define BAD_MINOR APPHOST_ABI_MINOR
#endif
#ifndef BAD_SIZE
#define BAD_SIZE sizeof(apphost_services)
#endif

const apphost_magic *apphost_component_magic(void)
{
	static const apphost_magic m = {BAD_MAGIC, BAD_MAJOR,
					BAD_MINOR, (uint32_t)(BAD_SIZE),
					"badabi",  "0"};
	return &m;
}

int apphost_component_init(const apphost_services *svc, void **state)
{
	*state = NULL;
	return 0;
}

int apphost_component_start(void *state)
{
	return 0;
}

int apphost_component_stop(void *state)
{
	return 0;
}
