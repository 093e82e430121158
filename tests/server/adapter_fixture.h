/*
 * adapter_fixture.h -- the fixture of the suites that drive the adapters
 * directly (integration, models): the mock host on the servers of
 * scripts/services (rs), a client of each (redis, pg), and keys unique to
 * the test. Header-only: each test file has its own copy of the state.
 */
#ifndef ADAPTER_FIXTURE_H
#define ADAPTER_FIXTURE_H

#include "real_services.h"
#include "redis_pg.h"

#include "he_config.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>

static real_services *rs;
static redisContext *redis;
static PGconn *pg;

static inline void adapter_setup(void)
{
	rs_connect(&redis, &pg);
	rs = rs_new();
}

static inline void adapter_teardown(void)
{
	rs_disconnect(&redis, &pg);
	rs_free(rs);
	rs = NULL;
}

/* Keys of the test's own below u (th_unique): <u>:in, :lobby, :dead,
 * :offset, :fence, and the lease u; BLOCK 100 ms, batches of 100. */
static inline he_config adapter_config(const char *u)
{
	he_config cfg = {.block_ms = 100, .batch = 100};
	snprintf(cfg.stream, sizeof(cfg.stream), "%s:in", u);
	snprintf(cfg.lobby_stream, sizeof(cfg.lobby_stream), "%s:lobby", u);
	snprintf(cfg.dead_stream, sizeof(cfg.dead_stream), "%s:dead", u);
	snprintf(cfg.offset_key, sizeof(cfg.offset_key), "%s:offset", u);
	snprintf(cfg.fence_key, sizeof(cfg.fence_key), "%s:fence", u);
	snprintf(cfg.lease_name, sizeof(cfg.lease_name), "%s", u);
	return cfg;
}

#endif
