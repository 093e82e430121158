/* pool.c -- see pool.h. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define BACKOFF_MIN_MS 100
/* Capped at 1 s: a server that comes back is used again within ~1 s. */
#define BACKOFF_MAX_MS	       1000
#define CONNECT_TIMEOUT_MIN_MS 200
#define CONNECT_TIMEOUT_MAX_MS 5000

enum reach { REACH_UNKNOWN, REACH_UP, REACH_DOWN };

struct slot {
	void *conn; /* NULL: free slot (no connection) */
	bool leased;
	bool connecting; /* reserved by a lease that is connecting */
	/* Holder while leased; kept after release as the last lessee, so
	 * the next lease knows whether the lessee changes. */
	char who[64];
};

struct apphost_pool {
	/* immutable after apphost_pool_new */
	const struct apphost_pool_ops *ops;
	void *arg;
	char *addr;
	unsigned max;
	struct slot *slots; /* the array; its entries: mu */
	/* apphost_pool_*{pool=kind} in the default registry (NULL: none) */
	struct apphost_metric *m_leases, *m_timeouts, *m_unreachable, *m_conns;

	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a slot is released */
	unsigned leased;   /* mu */

	enum reach reach;     /* mu */
	uint32_t backoff_ms;  /* mu */
	uint64_t retry_at_ns; /* mu: no connect attempt before this */
	int down_code;	      /* mu: what a lease says while down */
};

/* Look up this pool's series (shared by pools of the same kind). */
static void pool_metrics(struct apphost_pool *p)
{
	struct apphost_metrics *r = apphost_metrics_default();
	const char *pool[] = {"pool", p->ops->kind, NULL};
	const char *timeout[] = {"pool", p->ops->kind, "reason", "timeout",
				 NULL};
	const char *unreachable[] = {"pool", p->ops->kind, "reason",
				     "unreachable", NULL};
	static const char fail_help[] =
	    "Leases refused: timeout (pool exhausted) or unreachable (server "
	    "down or in its reconnect backoff).";

	(void)apphost_metrics_get(
	    r, APPHOST_METRIC_COUNTER, "apphost_pool_leases_total",
	    "Connections leased to components.", pool, NULL, 0, &p->m_leases);
	(void)apphost_metrics_get(r, APPHOST_METRIC_COUNTER,
				  "apphost_pool_lease_failures_total",
				  fail_help, timeout, NULL, 0, &p->m_timeouts);
	(void)apphost_metrics_get(
	    r, APPHOST_METRIC_COUNTER, "apphost_pool_lease_failures_total",
	    fail_help, unreachable, NULL, 0, &p->m_unreachable);
	(void)apphost_metrics_get(
	    r, APPHOST_METRIC_GAUGE, "apphost_pool_connections",
	    "Open connections, leased or idle.", pool, NULL, 0, &p->m_conns);
}

static const char *holder(const char *who)
{
	return who != NULL ? who : "apphost";
}

static void set_who(struct slot *s, const char *who)
{
	snprintf(s->who, sizeof(s->who), "%s", holder(who));
}

/* Whether `who` differs from the slot's holder or last lessee (compared
 * as stored, i.e. truncated like s->who). */
static bool other_lessee(const struct slot *s, const char *who)
{
	char w[sizeof(s->who)];

	snprintf(w, sizeof(w), "%s", holder(who));
	return strcmp(s->who, w) != 0;
}

int apphost_pool_new(const struct apphost_pool_ops *ops, void *arg,
		     const char *addr, unsigned max, struct apphost_pool **out)
{
	struct apphost_pool *p;
	pthread_condattr_t ca;

	if (max == 0 || ops == NULL)
		return APPHOST_EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return APPHOST_ENOMEM;
	p->slots = calloc(max, sizeof(*p->slots));
	p->addr = strdup(addr != NULL ? addr : "?");
	if (p->slots == NULL || p->addr == NULL) {
		free(p->slots);
		free(p->addr);
		free(p);
		return APPHOST_ENOMEM;
	}
	p->ops = ops;
	p->arg = arg;
	p->max = max;
	p->backoff_ms = BACKOFF_MIN_MS;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pool_metrics(p);
	*out = p;
	return 0;
}

/* Under the lock: an idle connected slot, else a free one, else NULL. */
static struct slot *pick_slot(struct apphost_pool *p, bool *connected)
{
	struct slot *free_slot = NULL;

	for (unsigned i = 0; i < p->max; i++) {
		struct slot *s = &p->slots[i];

		if (s->leased || s->connecting)
			continue;
		if (s->conn != NULL) {
			*connected = true;
			return s;
		}
		if (free_slot == NULL)
			free_slot = s;
	}
	*connected = false;
	return free_slot;
}

/* A connect outcome's log line, written once the lock is dropped. */
struct connect_note {
	bool log;
	int level;
	char msg[64];
	uint32_t retry_in_ms;
	int code;
};

/* Under the lock: record a connect outcome; *n says what to log after
 * unlocking (a lessee must not wait behind a write to stderr). */
static void note_connect(struct apphost_pool *p, int rc, struct connect_note *n)
{
	if (rc == 0) {
		snprintf(n->msg, sizeof(n->msg), "%s %s", p->ops->kind,
			 p->reach == REACH_DOWN ? "reachable again"
						: "connected");
		n->log = p->reach != REACH_UP;
		n->level = APPHOST_LOG_INFO;
		p->reach = REACH_UP;
		p->backoff_ms = BACKOFF_MIN_MS;
		p->retry_at_ns = 0;
		return;
	}
	/* A refusal of the credentials or of a privilege is not an outage:
	 * it says so, and leases report it until a connect succeeds. */
	p->down_code =
	    rc == APPHOST_EAUTH || rc == APPHOST_EPERM ? rc : APPHOST_ECONN;
	snprintf(n->msg, sizeof(n->msg), "%s %s%s", p->ops->kind,
		 p->reach == REACH_DOWN ? "still " : "",
		 rc == APPHOST_EAUTH   ? "refuses authentication"
		 : rc == APPHOST_EPERM ? "refuses a permission"
				       : "unreachable");
	n->log = true;
	n->level =
	    p->reach == REACH_DOWN ? APPHOST_LOG_DEBUG : APPHOST_LOG_ERROR;
	n->retry_in_ms = p->backoff_ms;
	n->code = p->down_code;
	p->reach = REACH_DOWN;
	p->retry_at_ns = apphost_now_ns() + (uint64_t)p->backoff_ms * 1000000u;
	p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : p->backoff_ms * 2;
}

/* Outside the lock: the line note_connect decided on. */
static void log_connect(const struct apphost_pool *p, int rc,
			const struct connect_note *n, const char *err)
{
	if (!n->log)
		return;
	if (rc == 0)
		apphost_log(n->level, NULL, n->msg, "addr=%s", p->addr);
	else
		apphost_log(n->level, NULL, n->msg,
			    "addr=%s err=\"%s\" retry_in_ms=%u code=%s",
			    p->addr, err, n->retry_in_ms,
			    apphost_err_name(n->code));
}

/* What is left from now to deadline, within the connect bounds. */
static uint32_t clamp_ms(uint64_t now, uint64_t deadline)
{
	uint64_t left_ms = now < deadline ? (deadline - now) / 1000000u : 0;

	return left_ms < CONNECT_TIMEOUT_MIN_MS	  ? CONNECT_TIMEOUT_MIN_MS
	       : left_ms > CONNECT_TIMEOUT_MAX_MS ? CONNECT_TIMEOUT_MAX_MS
						  : (uint32_t)left_ms;
}

int apphost_pool_lease(struct apphost_pool *p, uint32_t timeout_ms,
		       const char *who, void **out)
{
	uint64_t start = apphost_now_ns();
	uint64_t deadline = start + (uint64_t)timeout_ms * 1000000u;
	struct slot *s;
	bool connected;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		s = pick_slot(p, &connected);
		if (s != NULL)
			break;
		uint64_t now = apphost_now_ns();

		if (now >= deadline) {
			char msg[128];

			snprintf(msg, sizeof(msg),
				 "%s pool exhausted: %u of %u leased for %u ms",
				 p->ops->kind, p->leased, p->max, timeout_ms);
			pthread_mutex_unlock(&p->mu);
			apphost_metric_add(p->m_timeouts, 1);
			apphost_log(APPHOST_LOG_ERROR, who, msg, "addr=%s",
				    p->addr);
			return APPHOST_ETIMEDOUT;
		}
		struct timespec ts = {
		    .tv_sec = (time_t)(deadline / 1000000000u),
		    .tv_nsec = (long)(deadline % 1000000000u),
		};
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}

	if (connected) {
		bool new_lessee = other_lessee(s, who);
		uint32_t pto = clamp_ms(start, deadline);

		s->leased = true;
		set_who(s, who);
		p->leased++;
		pthread_mutex_unlock(&p->mu);
		if (p->ops->prepare(p->arg, s->conn, new_lessee, pto) == 0) {
			apphost_metric_add(p->m_leases, 1);
			*out = s->conn;
			return 0;
		}
		/* Stale idle connection: drop it and connect anew below. */
		apphost_log(APPHOST_LOG_DEBUG, who,
			    "discarding stale connection", "pool=%s addr=%s",
			    p->ops->kind, p->addr);
		void *stale;

		/* Out of the slot first: apphost_pool_each must not see it
		 * while it is being closed. */
		pthread_mutex_lock(&p->mu);
		stale = s->conn;
		s->conn = NULL;
		pthread_mutex_unlock(&p->mu);
		p->ops->close(p->arg, stale);
		apphost_metric_add(p->m_conns, -1);
		pthread_mutex_lock(&p->mu);
		s->leased = false;
		p->leased--;
		/* The slot is free again: a waiter must not sleep out its
		 * timeout if we return in the backoff window below. */
		pthread_cond_signal(&p->cv);
	}

	/* Need a new connection in slot s (still free, lock held). */
	uint64_t now = apphost_now_ns();

	if (p->reach == REACH_DOWN && now < p->retry_at_ns) {
		rc = p->down_code;
		pthread_mutex_unlock(&p->mu);
		apphost_metric_add(p->m_unreachable, 1);
		return rc;
	}
	if (p->reach == REACH_DOWN) /* this caller probes; others back off */
		p->retry_at_ns = now + (uint64_t)p->backoff_ms * 1000000u;
	s->connecting = true;
	set_who(s, who);
	p->leased++;
	pthread_mutex_unlock(&p->mu);

	uint32_t cto = clamp_ms(now, deadline);
	void *conn = NULL;
	char err[256] = "";

	struct connect_note note = {0};
	int crc;

	crc = p->ops->connect(p->arg, cto, &conn, err, sizeof(err));
	pthread_mutex_lock(&p->mu);
	s->connecting = false;
	note_connect(p, crc, &note);
	if (crc < 0) {
		rc = p->down_code;
		p->leased--;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		log_connect(p, crc, &note, err);
		apphost_metric_add(p->m_unreachable, 1);
		return rc;
	}
	s->conn = conn;
	s->leased = true;
	pthread_mutex_unlock(&p->mu);
	log_connect(p, crc, &note, err);
	apphost_metric_add(p->m_conns, 1);
	apphost_metric_add(p->m_leases, 1);
	*out = conn;
	return 0;
}

int apphost_pool_release(struct apphost_pool *p, void *conn, const char *who,
			 bool broken)
{
	struct slot *s = NULL;

	if (conn == NULL)
		return 0;
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->max; i++)
		if (p->slots[i].conn == conn && p->slots[i].leased)
			s = &p->slots[i];
	if (s == NULL) {
		pthread_mutex_unlock(&p->mu);
		apphost_log(APPHOST_LOG_ERROR, who,
			    "release of a connection not leased from the pool",
			    "pool=%s", p->ops->kind);
		return APPHOST_EINVAL;
	}
	if (other_lessee(s, who)) {
		char holder_name[sizeof(s->who)];

		/* Someone else's lease: its holder still uses it. */
		snprintf(holder_name, sizeof(holder_name), "%s", s->who);
		pthread_mutex_unlock(&p->mu);
		apphost_log(APPHOST_LOG_ERROR, who,
			    "release refused: the connection is leased to "
			    "another holder",
			    "pool=%s holder=%s", p->ops->kind, holder_name);
		return APPHOST_EINVAL;
	}
	if (broken)
		s->conn = NULL;
	s->leased = false;
	p->leased--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (broken) {
		p->ops->close(p->arg, conn);
		apphost_metric_add(p->m_conns, -1);
	}
	return 0;
}

void apphost_pool_each(struct apphost_pool *p,
		       void (*fn)(void *arg, void *conn), void *arg)
{
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->max; i++)
		if (p->slots[i].conn != NULL)
			fn(arg, p->slots[i].conn);
	pthread_mutex_unlock(&p->mu);
}

unsigned apphost_pool_leased(struct apphost_pool *p)
{
	unsigned n;

	pthread_mutex_lock(&p->mu);
	n = p->leased;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void apphost_pool_free(struct apphost_pool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->max; i++) {
		struct slot *s = &p->slots[i];

		if (s->leased)
			apphost_log(APPHOST_LOG_WARN, s->who,
				    "lease not returned before shutdown",
				    "pool=%s", p->ops->kind);
		if (s->conn != NULL) {
			p->ops->close(p->arg, s->conn);
			apphost_metric_add(p->m_conns, -1);
		}
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->slots);
	free(p->addr);
	free(p);
}
