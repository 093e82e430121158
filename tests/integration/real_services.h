/*
 * real_services.h -- an apphost_services table for the integration suite
 * that hands out real connections (one fresh connection per lease) to the
 * servers scripts/services started, and captures log lines. No pooling:
 * the suite tests the component's adapters, not the host.
 */
#ifndef TEST_REAL_SERVICES_H
#define TEST_REAL_SERVICES_H

#include <apphost/component.h>
#include <stddef.h>

typedef struct real_services real_services;

/*
 * From APPHOST_REDIS_URL / APPHOST_POSTGRES_DSN. Returns NULL when they
 * are unset (the caller skips, or fails under CI). config entries are set
 * with rs_config_set.
 */
real_services *rs_new(void);
void rs_free(real_services *rs);
const apphost_services *rs_services(real_services *rs);
void rs_config_set(real_services *rs, const char *key, const char *value);
/* Lines logged at >= level containing `needle`. */
size_t rs_log_count(real_services *rs, int level, const char *needle);
/* Leases not yet released. */
int rs_leases_out(real_services *rs);

/* Direct connections for test setup and checks (caller frees). */
struct redisContext *rs_redis(void);
struct pg_conn *rs_pg(void);

/* skip (or fail under CI) when servers are not configured */
#define RS_REQUIRE(rs)                                                       \
	do {                                                                 \
		if (!(rs)) {                                                 \
			if (getenv("CI"))                                    \
				cr_assert_fail("APPHOST_REDIS_URL/"          \
					       "APPHOST_POSTGRES_DSN unset " \
					       "under CI");                  \
			cr_skip_test("servers not configured: run via "      \
				     "scripts/test");                        \
		}                                                            \
	} while (0)

#endif
