/*
 * real_services.h -- the servers scripts/services started, for the
 * server-backed suites: whether they are configured (skip, or fail under
 * CI), direct connections for setup and checks, and an apphost_services
 * table that hands out real connections (one fresh connection per lease)
 * and captures log lines. No pooling: the suites test the component, not
 * the host.
 */
#ifndef TEST_SERVER_REAL_SERVICES_H
#define TEST_SERVER_REAL_SERVICES_H

#include <apphost/component.h>
#include <stddef.h>

typedef struct real_services real_services;

/*
 * From APPHOST_REDIS_URL / APPHOST_POSTGRES_DSN: a new table owned by the
 * caller (rs_free; NULL is a no-op), or NULL when they are unset (call
 * rs_require_servers first). The services table is valid until rs_free;
 * its functions, rs_log_count and rs_leases_out may be called from any
 * thread (one mutex); rs_config_set only before the component runs.
 */
real_services *rs_new(void);
void rs_free(real_services *rs);
const apphost_services *rs_services(real_services *rs);
/* Set config `key` (copied) to `value` (copied) for config_get. */
void rs_config_set(real_services *rs, const char *key, const char *value);
/* Lines logged at >= level containing `needle`. */
size_t rs_log_count(real_services *rs, int level, const char *needle);
/* Leases not yet released. */
int rs_leases_out(real_services *rs);
/* Releases that said the connection broke. */
int rs_broken_releases(real_services *rs);

/* Direct connections for test setup and checks (caller frees); NULL
 * when unset or unreachable. Any thread. */
struct redisContext *rs_redis(void);
struct pg_conn *rs_pg(void);

/*
 * Skip the test when APPHOST_REDIS_URL / APPHOST_POSTGRES_DSN are unset,
 * or fail it when CI is set. Test thread (.init or the test body).
 */
void rs_require_servers(void);
/*
 * rs_require_servers(), then a direct connection to each server into
 * *redis and *pg; asserts both connect. Free with rs_disconnect.
 */
void rs_connect(struct redisContext **redis, struct pg_conn **pg);
/* Free *redis and *pg (NULL is fine) and set them to NULL. */
void rs_disconnect(struct redisContext **redis, struct pg_conn **pg);

#endif
