/*
 * he_config.h -- health_events configuration (DESIGN §3), read through the
 * host's config_get and validated once in init.
 */
#ifndef HE_CONFIG_H
#define HE_CONFIG_H

#include <apphost/component.h>
#include <stdbool.h>

#define HE_KEY_MAX 512

typedef struct he_config {
	char stream[HE_KEY_MAX];       /* HEALTH_EVENTS_STREAM */
	char lobby_stream[HE_KEY_MAX]; /* HEALTH_EVENTS_LOBBY_STREAM */
	char dead_stream[HE_KEY_MAX];  /* HEALTH_EVENTS_DEAD_LETTER_STREAM */
	char offset_key[HE_KEY_MAX];   /* gamemaster:stream_offsets:<label> */
	char fence_key[HE_KEY_MAX];    /* <offset_key>:fence (Redis fencing) */
	/* HEALTH_EVENTS_OFFSET_LABEL as given: the name of the lease row,
	 * which also fences every apply */
	char lease_name[HE_KEY_MAX];
	char instance_id[256]; /* HEALTH_EVENTS_INSTANCE_ID */
	unsigned block_ms;     /* HEALTH_EVENTS_BLOCK_MS */
	unsigned batch;	       /* HEALTH_EVENTS_BATCH */
	unsigned lease_ms;     /* HEALTH_EVENTS_LEASE_MS */
	/* HEALTH_EVENTS_SYNCHRONOUS_COMMIT=off: the applies commit without
	 * waiting for their WAL flush (DESIGN §13 re-applies what a crash
	 * loses; docs/design.md) */
	bool async_commit;
} he_config;

/* Default lease: a SIGKILLed leader's lease lapses and a standby polling
 * every 250 ms takes over within 3.25 s, inside DESIGN's 5 s. */
#define HE_LEASE_MS_DEFAULT "3000"

/*
 * One XREAD blocks at most this long, and at most a quarter of the lease,
 * whatever HEALTH_EVENTS_BLOCK_MS says: the idle consumer re-checks both
 * servers after each XREAD, and a leader renews only while both answered
 * within half a lease (DESIGN §10). A longer BLOCK_MS just means several
 * XREADs in a row; a shorter one is used as is.
 */
#define HE_BLOCK_MAX_PER_READ_MS 2000u

/* The BLOCK of one XREAD: min(block_ms, HE_BLOCK_MAX_PER_READ_MS,
 * lease_ms / 4). */
static inline unsigned he_config_read_block_ms(const he_config *cfg)
{
	unsigned b = cfg->block_ms < HE_BLOCK_MAX_PER_READ_MS
			 ? cfg->block_ms
			 : HE_BLOCK_MAX_PER_READ_MS;
	return cfg->lease_ms && cfg->lease_ms / 4 < b ? cfg->lease_ms / 4 : b;
}

/*
 * Fill *cfg from svc->config_get, defaults for unset keys. Returns 0, or
 * HE_EINVAL after logging one error that names the key and the value.
 * Main thread (init).
 */
int he_config_load(const apphost_services *svc, he_config *cfg);

#endif /* HE_CONFIG_H */
