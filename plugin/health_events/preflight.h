/*
 * preflight.h -- may this instance do everything it will do? Asked of
 * PostgreSQL (the role's privileges on what schema/grants lists) and of
 * Redis (the user's ACL on every command and key redis_needs.c lists),
 * without executing or writing anything.
 *
 * The consumer runs it before it first reports ready and again after
 * every reconnection (Redis ACLs are per node; a failover may reach a
 * server configured otherwise). A refusal names the privilege and the
 * object, or the command and the key.
 *
 * One he_preflight belongs to one thread (the consumer's).
 */
#ifndef HE_PREFLIGHT_H
#define HE_PREFLIGHT_H

#include "he_config.h"
#include "ports.h"
#include "redis_needs.h"

#include <stdbool.h>

typedef struct he_preflight {
	const apphost_services *svc;
	const he_config *cfg;
	bool sentinel;		   /* APPHOST_REDIS_SENTINELS set */
	bool warned[32];	   /* an optional command, said once */
	bool redis_unchecked_said; /* a server that cannot ask */
	bool acl_said;		   /* the ACL line, logged once */
	char err[512];		   /* why the last check failed */
} he_preflight;

/* Bind pf to svc and cfg (both outlive it). No I/O. */
void he_preflight_init(he_preflight *pf, const apphost_services *svc,
		       const he_config *cfg);

/*
 * PostgreSQL: the schema's USAGE, each listed function (to_regprocedure,
 * then EXECUTE) and each table privilege, on a connection of its own
 * (leased and given back). HE_OK; HE_EPERM with every missing privilege
 * and its object in pf->err; another negative code (the lease or a
 * query failed) with the reason in pf->err.
 */
int he_preflight_pg(he_preflight *pf);

/*
 * Redis: one no-writes script asks redis.acl_check_cmd about every
 * command of the list with its whole argument list and this
 * configuration's keys. HE_OK (missing optional commands are logged as a
 * warning, once each, saying what is lost; a server without the script
 * API, before Redis 7, is logged once and passes); HE_EPERM with each
 * missing required command and its key in pf->err; another code when
 * Redis failed.
 */
int he_preflight_redis(he_preflight *pf);

#endif
