/* badabi.c -- a hand-built magic block with one field wrong, chosen at
 * build time: BAD_MAGIC, BAD_MAJOR, BAD_MINOR, BAD_SIZE or BAD_HIREDIS;
 * or, with ABI_1_0, the shorter block of a component built for ABI 1.0
 * (no hiredis fields), which must load. Its lifecycle is noop.c's. */
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
#ifndef BAD_HIREDIS
#define BAD_HIREDIS APPHOST_HIREDIS_MAJOR
#endif

#ifdef ABI_1_0
/* The block as ABI 1.0 laid it out: it ends after `version`. */
struct magic_1_0 {
	uint32_t magic;
	uint16_t abi_major, abi_minor;
	uint32_t services_size;
	const char *name, *version;
};

const apphost_magic *apphost_component_magic(void)
{
	static const struct magic_1_0 m = {
	    APPHOST_MAGIC, 1, 0, (uint32_t)APPHOST_SERVICES_SIZE_1_0, "abi10",
	    "0"};
	return (const apphost_magic *)(const void *)&m;
}
#else
const apphost_magic *apphost_component_magic(void)
{
	static const apphost_magic m = {BAD_MAGIC,
					BAD_MAJOR,
					BAD_MINOR,
					(uint32_t)(BAD_SIZE),
					"badabi",
					"0",
					BAD_HIREDIS,
					APPHOST_HIREDIS_MINOR};
	return &m;
}
#endif
