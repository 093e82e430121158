/*
 * consumer.h -- the runtime:health_events consumer: one uv_thread_t that
 * reads batches, runs them through the decision core against PostgreSQL,
 * commits the outbox and the offset to Redis, and retries infrastructure
 * errors with capped backoff without ever advancing past unfinished work.
 */
#ifndef HE_CONSUMER_H
#define HE_CONSUMER_H

#include "core.h"
#include "he_config.h"

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

/* Its permission check (preflight.h), for the component's check entry
 * point: only before start, main thread. Owned by c. */
struct he_preflight *he_consumer_preflight(he_consumer *c);

/*
 * Stop: the thread finishes the batch in hand (commit and offset
 * included, unless its servers are failing), wakes from XREAD BLOCK via
 * CLIENT UNBLOCK, returns its leases and exits; then frees c. Started or
 * not; NULL is a no-op. Main thread.
 */
void he_consumer_free(he_consumer *c);

/*
 * Hot swap export: park the thread between batches (the batch in hand is
 * finished, committed and its offset saved; nothing more is read until
 * he_consumer_free), then serialise the dedupe cache into a malloc()ed
 * buffer the caller frees. Exporting while the thread still processes
 * would hand over a stale cache, and a stale entry equal to a later
 * summary suppresses a snapshot Lobby needs. Returns 0, HE_ENOMEM, or
 * HE_ETIMEDOUT when the batch did not finish within 5 s (failing
 * servers; logged): no state then, which only costs repeated snapshots.
 * Call only right before he_consumer_free. Main thread.
 */
int he_consumer_export(he_consumer *c, void **buf, size_t *len);

/*
 * Hot swap import, before start: the state of he_consumer_export. The
 * cache is kept only if this instance's first epoch follows the
 * exporter's directly (nobody else led in between); otherwise it is
 * dropped as any new leader's is. 0, or HE_EINVAL (cache unchanged).
 */
int he_consumer_import(he_consumer *c, const void *buf, size_t len);

#endif
