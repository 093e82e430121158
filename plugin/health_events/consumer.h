/*
 * consumer.h -- the runtime:health_events consumer: one uv_thread_t that
 * reads batches, runs them through the decision core against PostgreSQL,
 * commits the outbox and the offset to Redis, and retries infrastructure
 * errors with capped backoff without ever advancing past unfinished work.
 */
#ifndef HE_CONSUMER_H
#define HE_CONSUMER_H

#include "config.h"
#include "core.h"

#include <apphost/component.h>

typedef struct he_consumer he_consumer;

/*
 * Validate configuration and allocate (no threads, no leases). Returns 0
 * and *out, or HE_EINVAL (logged, naming key and value) / HE_ENOMEM.
 * Main thread.
 */
int he_consumer_new(const apphost_services *svc, he_consumer **out);

/* Start the consumer thread. 0, or HE_ESTATE if already started. */
int he_consumer_start(he_consumer *c);

/*
 * Stop: the thread finishes the batch in hand (commit and offset
 * included, unless its servers are failing), wakes from XREAD BLOCK via
 * CLIENT UNBLOCK, returns its leases and exits; then frees c. Started or
 * not; NULL is a no-op. Main thread.
 */
void he_consumer_free(he_consumer *c);

/* The decision core (dedupe cache export/import for hot swap). */
he_core *he_consumer_core(he_consumer *c);

#endif
