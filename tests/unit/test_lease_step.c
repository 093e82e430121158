/* The lease as a state machine (core/he_lease_step.c), from tables: each
 * case is a script of steps with what the machine must answer. */
/* A script step names only the fields it uses. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "he_lease_step.h"
#include "index_params.h"
#include "ports.h"

#include <criterion/criterion.h>

enum op {
	END = 0,
	HEARD,	  /* both servers answered at t */
	HEARD_PG, /* only PostgreSQL answered at t */
	NEXT,	  /* he_lease_sm_next at t: expect what (a) and x (b) */
	ASKED,	  /* the ask sent at a came back at t: rc b, got c */
	RELEASED, /* the release came back at t */
	FENCED,	  /* a write with epoch a refused, fence b */
	WRITABLE, /* he_lease_sm_writable at t is a */
	LOST,	  /* news: epoch a lost for reason b (and cleared) */
	SAW,	  /* a standby's check read fence a */
	STOP,
};

typedef struct step {
	enum op op;
	unsigned t; /* ms */
	long long a, b, c;
} step;

typedef struct lcase {
	const char *name;
	step s[16];
} lcase;

#define W HE_LEASE_DO_WAIT
#define A HE_LEASE_DO_ASK
#define R HE_LEASE_DO_RELEASE

/* Lease 3000 ms: renew 750, valid 1500, poll 250, call 750, heard 1500,
 * aside 3000. */
static const lcase cases[] = {
    {"a standby that heard nothing does not contend",
     {{NEXT, 10, W, 260}, {NEXT, 300, W, 550}}},
    {"a standby that heard both asks, then leads until half a lease",
     {{HEARD, 1},
      {NEXT, 1, A, 0},
      {ASKED, 5, 1, 0, 7},
      {WRITABLE, 5, 7},
      {WRITABLE, 1400, 7},
      {HEARD, 1400},
      {WRITABLE, 1500, 7}, /* sent at 1 ms: deadline 1501 */
      {WRITABLE, 1501, 0}}},
    {"a confirmed renewal moves the deadline from when it was sent",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 2, 0, 0, 7},
      {NEXT, 100, W, 750},
      {HEARD, 700},
      {NEXT, 750, A, 0},
      {ASKED, 900, 750, 0, 7},
      {WRITABLE, 2000, 7},
      {WRITABLE, 2250, 0}}},
    {"a leader that loses Redis steps down, releases, stands aside",
     {{HEARD, 1},
      {NEXT, 1, A, 0},
      {ASKED, 2, 0, 0, 4},
      {HEARD_PG, 750},
      {NEXT, 750, A, 0},
      {ASKED, 751, 750, 0, 4}, /* renewed: valid until 2250 */
      {WRITABLE, 1500, 4},     /* Redis last answered at 1 ms */
      {WRITABLE, 1501, 0},
      {NEXT, 1501, R, 4},
      {LOST, 1501, 4, HE_LEASE_WHY_SILENT},
      {RELEASED, 1502},
      {HEARD, 1600},
      {NEXT, 1600, W, 1850},
      {HEARD, 4400},
      {NEXT, 4400, W, 4650}, /* aside until 4501 */
      {NEXT, 4650, A, 0}}},
    {"a renewal that fails past the deadline loses the lease",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 1, 0, 0, 3},
      {HEARD, 750},
      {NEXT, 750, A, 0},
      {ASKED, 1500, 750, HE_ETIMEDOUT, 0},
      {HEARD, 1500},
      {NEXT, 1500, R, 3},
      {LOST, 1500, 3, HE_LEASE_WHY_RENEW_FAILED}}},
    {"fenced: step down, then ask above the fence",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 1, 0, 0, 5},
      {FENCED, 0, 5, 9},
      {WRITABLE, 2, 0},
      {NEXT, 2, R, 5},
      {LOST, 2, 5, HE_LEASE_WHY_FENCED},
      {RELEASED, 3},
      {NEXT, 252, A, 10}}},
    {"refused without a fence named: that epoch is never used again",
     {{HEARD, 1},
      {NEXT, 1, A, 0},
      {ASKED, 2, 1, 0, 5},
      {FENCED, 0, 5, 0}, /* PostgreSQL's HE001 names no fence */
      {NEXT, 3, R, 5},
      {LOST, 3, 5, HE_LEASE_WHY_FENCED},
      {RELEASED, 4}, /* ... but the release did not land */
      {HEARD, 300},
      {NEXT, 300, A, 6},
      {ASKED, 301, 300, 0, 5}, /* the row still names us: renewed */
      {WRITABLE, 301, 0},
      {NEXT, 301, R, 5}}},
    {"a standby asks above the fence it read; a leader ignores its own",
     {{HEARD, 1},
      {SAW, 1, 7},
      {NEXT, 1, A, 8},
      {ASKED, 2, 1, 0, 8},
      {SAW, 3, 8}, /* the fence is ours now */
      {HEARD, 750},
      {NEXT, 751, A, 8},
      {ASKED, 752, 751, 0, 8},
      {WRITABLE, 753, 8}}},
    {"a refusal of an older epoch does not depose the current one",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 1, 0, 0, 5},
      {FENCED, 0, 4, 5},
      {WRITABLE, 2, 5},
      {NEXT, 2, W, 750}}},
    {"the lease taken by another: lost, no release",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 1, 0, 0, 5},
      {HEARD, 750},
      {NEXT, 750, A, 0},
      {ASKED, 760, 750, 0, 0},
      {LOST, 760, 5, HE_LEASE_WHY_TAKEN},
      {WRITABLE, 760, 0},
      {NEXT, 760, W, 1010}}},
    {"our lease lapsed and we got a new epoch",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 1, 0, 0, 5},
      {HEARD, 750},
      {NEXT, 750, A, 0},
      {ASKED, 760, 750, 0, 6},
      {LOST, 760, 5, HE_LEASE_WHY_LAPSED},
      {WRITABLE, 760, 6}}},
    {"stopping lets the lease go, then nothing more",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 1, 0, 0, 8},
      {STOP, 10},
      {NEXT, 10, R, 8},
      {LOST, 10, 8, HE_LEASE_WHY_STOPPING},
      {RELEASED, 11},
      {NEXT, 11, W, -1}}},
    {"a failed ask: a standby polls again, a leader retries soon",
     {{HEARD, 1},
      {NEXT, 0, A, 0},
      {ASKED, 10, 0, HE_ECONN, 0},
      {NEXT, 20, W, 260},
      {NEXT, 260, A, 0},
      {ASKED, 261, 260, 0, 2},
      {HEARD, 1000},
      {NEXT, 1010, A, 0},
      {ASKED, 1020, 1010, HE_ETIMEDOUT, 0},
      {NEXT, 1030, W, 1207}}},
};

ParameterizedTestParameters(lease_step, scripts)
{
	INDEX_PARAMS(cases);
}

ParameterizedTest(size_t *ip, lease_step, scripts)
{
	const lcase *c = &cases[*ip];
	he_lease_sm s;
	he_lease_sm_init(&s, 3000);
	const uint64_t ms = 1000000u;
	for (size_t i = 0; c->s[i].op != END; i++) {
		const step *p = &c->s[i];
		uint64_t t = p->t * ms;
		he_lease_next n;
		switch (p->op) {
		case HEARD:
			he_lease_sm_heard(&s, HE_HEARD_REDIS, t);
			/* fall through */
		case HEARD_PG: he_lease_sm_heard(&s, HE_HEARD_PG, t); break;
		case NEXT:
			n = he_lease_sm_next(&s, t);
			cr_assert_eq(n.what, p->a, "%s: step %zu: what %d",
				     c->name, i, n.what);
			if (n.what == W)
				cr_assert_eq(
				    n.at_ns,
				    p->b < 0 ? UINT64_MAX : (uint64_t)p->b * ms,
				    "%s: step %zu: until %llu", c->name, i,
				    (unsigned long long)n.at_ns);
			else if (n.what == A)
				cr_assert_eq(n.min_epoch,
					     (unsigned long long)p->b,
					     "%s: step %zu: min %llu", c->name,
					     i, n.min_epoch);
			else
				cr_assert_eq(n.epoch, (uint64_t)p->b,
					     "%s: step %zu", c->name, i);
			break;
		case ASKED:
			he_lease_sm_asked(&s, t, p->a * ms, (int)p->b,
					  (uint64_t)p->c);
			break;
		case RELEASED: he_lease_sm_released(&s, t, 0); break;
		case FENCED:
			he_lease_sm_fenced(&s, (uint64_t)p->a,
					   (unsigned long long)p->b);
			break;
		case WRITABLE:
			cr_assert_eq(
			    he_lease_sm_writable(&s, t), (uint64_t)p->a,
			    "%s: step %zu: writable at %u", c->name, i, p->t);
			break;
		case LOST:
			cr_assert_eq(s.news.lost, (uint64_t)p->a,
				     "%s: step %zu", c->name, i);
			cr_assert_eq(s.news.why, p->b, "%s: step %zu: why %s",
				     c->name, i, he_lease_why_name(s.news.why));
			s.news = (he_lease_news){0};
			break;
		case STOP: he_lease_sm_stop(&s); break;
		case SAW:
			he_lease_sm_saw_fence(&s, (unsigned long long)p->a);
			break;
		case END: break;
		}
	}
}

Test(lease_step, the_deadline_comes_before_the_lease_can_lapse)
{
	/* Whatever the lease, a renewal sent at t makes us writable until
	 * t + lease/2, while the database keeps it until after t + lease. */
	for (unsigned ms = 500; ms <= 60000; ms += 500) {
		he_lease_sm s;
		he_lease_sm_init(&s, ms);
		he_lease_sm_heard(&s, HE_HEARD_REDIS, 1);
		he_lease_sm_heard(&s, HE_HEARD_PG, 1);
		(void)he_lease_sm_next(&s, 1);
		he_lease_sm_asked(&s, 2, 1, 0, 1);
		cr_assert_leq(s.valid_until, 1 + (uint64_t)ms * 1000000u / 2);
	}
}
