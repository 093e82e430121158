/* The consumer's decisions (core/he_consumer_step.c), from tables. */
/* A script step names only the fields it uses. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "he_consumer_step.h"
#include "he_lease_step.h"
#include "index_params.h"
#include "ports.h"

#include <criterion/criterion.h>

/* ---- converging the two positions ---------------------------------- */

typedef struct conv {
	bool has_applied;
	he_stream_id applied;
	bool has_saved;
	he_stream_id saved;
	he_converge want;
	he_stream_id resume;
} conv;

static const conv convs[] = {
    {true, {5, 0}, true, {5, 0}, HE_CONVERGE_RESUME, {5, 0}},
    {true, {9, 0}, true, {10, 0}, HE_CONVERGE_REAPPLY, {9, 0}}, /* numbers */
    {true, {10, 1}, true, {10, 0}, HE_CONVERGE_REPAIR, {10, 1}},
    {true, {3, 0}, false, {0, 0}, HE_CONVERGE_REPAIR, {3, 0}},	/* key gone */
    {false, {0, 0}, true, {4, 2}, HE_CONVERGE_RESUME, {4, 2}},	/* upgrade */
    {false, {0, 0}, false, {0, 0}, HE_CONVERGE_RESUME, {0, 0}}, /* new */
    {true, {0, 0}, true, {7, 0}, HE_CONVERGE_REAPPLY, {0, 0}},	/* restored */
};

ParameterizedTestParameters(consumer_step, converge)
{
	INDEX_PARAMS(convs);
}

ParameterizedTest(size_t *ip, consumer_step, converge)
{
	const conv *c = &convs[*ip];
	he_stream_id at = {99, 99};
	cr_assert_eq(he_converge_decide(c->has_applied, c->applied,
					c->has_saved, c->saved, &at),
		     c->want, "case %zu", *ip);
	cr_assert_eq(he_stream_id_cmp(at, c->resume), 0, "case %zu", *ip);
}

/* ---- scripts ---------------------------------------------------------- */

enum op {
	END = 0,
	NEXT, /* he_cs_next_call at t with writable epoch a: expect what b,
	       * from c-0 (-1: none), to d-0, flags e */
	DONE, /* the call came back at t: rc a, n b, id c-0 */
	RECONNECTED,
	STOP,
	FENCE,	 /* the next refusal names fence c-0 */
	DROPPED, /* news: the outboxes in hand are dropped */
	SAWN,	 /* news: a standby's check read fence a (and cleared) */
	SWAP,	 /* a hot swap's predecessor led with epoch a, published to
		  * c-0 */
	NEWS,	 /* news: fenced epoch a with fence b, stood down from c */
};

typedef struct step {
	enum op op;
	unsigned t;
	long long a, b, c, d, e;
} step;

typedef struct ccase {
	const char *name;
	step s[24];
	bool pipelined; /* he_cs_pipeline */
} ccase;

#define ANY -2
#define TK  HE_CS_TAKE_OVER
#define POS HE_CS_POSITION
#define RR  HE_CS_REPAIR_READ
#define RP  HE_CS_REPAIR
#define RD  HE_CS_READ
#define AP  HE_CS_APPLY
#define CM  HE_CS_COMMIT
#define PG  HE_CS_PING
#define WT  HE_CS_WAIT

/* A new leader of epoch 3 takes over at 0 ms, finds the saved offset
 * saved-0 and the applied position applied-0 at 2 ms. */
#define LEAD(saved, applied)                                                   \
	{NEXT, 0, 3, TK, ANY, ANY, 0}, {DONE, 1, 0, 0, saved},                 \
	    {NEXT, 1, 3, POS, ANY, ANY, 0},                                    \
	{                                                                      \
		DONE, 2, 0, 0, applied                                         \
	}

/* Pipelined, after LEAD(5, 5): batch 5..6 applied, the next one read
 * ahead (without blocking) and its apply 6..7 sent at 5 ms. */
#define PIPE()                                                                 \
	LEAD(5, 5), {NEXT, 2, 3, RD, 5, ANY, ANY}, {DONE, 3, 0, 1, 6},         \
	    {NEXT, 3, 3, AP, 5, 6, 0}, {DONE, 4, 0},                           \
	    {NEXT, 4, 3, RD, 6, ANY, 0}, {DONE, 5, 0, 1, 7},                   \
	{                                                                      \
		NEXT, 5, 3, AP, 6, 7, 0                                        \
	}

/* Lease 3000: idle pings after 375 ms. Steps that do not care about a
 * field give ANY. */
static const ccase cases[] = {
    {"a standby pings both servers, then waits",
     {{NEXT, 0, 0, PG, ANY, ANY, 0},
      {DONE, 1, 0},
      {NEXT, 1, 0, PG, ANY, ANY, 0},
      {DONE, 2, 0},
      {NEXT, 2, 0, WT, ANY, ANY, 0}}},
    {"a standby's Redis check tells the fence it read; a leader's not",
     {{NEXT, 0, 0, PG, ANY, ANY, 0}, /* Redis first */
      {FENCE, 0, 0, 0, 7},
      {DONE, 1, 0},
      {SAWN, 0, 7},
      {NEXT, 1, 0, PG, ANY, ANY, 0},
      {DONE, 2, 0},
      {SAWN, 0, 0}, /* PostgreSQL reads no fence */
      {NEXT, 3, 3, TK, ANY, ANY, 0},
      {DONE, 4, 0, 0, 5},
      {NEXT, 4, 3, POS, ANY, ANY, 0},
      {DONE, 5, 0, 0, 5},
      {NEXT, 5, 3, RD, 5, ANY, ANY},
      {DONE, 800, 0, 0, 0},
      {NEXT, 800, 3, PG, ANY, ANY, 0}, /* idle PostgreSQL */
      {DONE, 801, 0},
      {SAWN, 0, 0}}},
    {"a hot-swap successor keeps the cache: no leader between, all in Redis",
     {{SWAP, 0, 2, 0, 5}, LEAD(5, 5), {NEXT, 2, 3, RD, 5, ANY, 0}}},
    {"... not when another led in between",
     {{SWAP, 0, 1, 0, 5}, LEAD(5, 5), {NEXT, 2, 3, RD, 5, ANY, HE_CS_RESET}}},
    {"... nor when Redis lost what the cache reflects",
     {{SWAP, 0, 2, 0, 6}, LEAD(5, 5), {NEXT, 2, 3, RD, 5, ANY, HE_CS_RESET}}},
    {"a new leader with both positions equal resumes there",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, HE_CS_RESET},
      {DONE, 3, 0, 2, 7},
      {NEXT, 3, 3, AP, 5, 7, 0},
      {DONE, 4, 0},
      {NEXT, 4, 3, CM, 5, 7, 0},
      {DONE, 5, 0},
      {NEXT, 5, 3, RD, 7, ANY, 0}}},
    {"redis behind: publish again up to the applied position",
     {LEAD(5, 9),
      {NEXT, 2, 3, RR, 5, 9, HE_CS_RESET},
      {DONE, 3, 0, 2, 7},
      {NEXT, 3, 3, RP, 5, 7, 0},
      {DONE, 4, 0},
      {NEXT, 4, 3, CM, 5, 7, 0},
      {DONE, 5, 0},
      {NEXT, 5, 3, RR, 7, 9, 0},
      {DONE, 6, 0, 0, 0}, /* the stream holds no more of them */
      {NEXT, 6, 3, RP, 7, 9, 0},
      {DONE, 7, 0},
      {NEXT, 7, 3, CM, 7, 9, 0},
      {DONE, 8, 0},
      {NEXT, 8, 3, RD, 9, ANY, 0}}},
    {"redis ahead: apply again from the applied position, offset stays",
     {LEAD(9, 5),
      {NEXT, 2, 3, RD, 5, ANY, HE_CS_RESET},
      {DONE, 3, 0, 1, 6},
      {NEXT, 3, 3, AP, 5, 6, 0},
      {DONE, 4, 0},
      {NEXT, 4, 3, CM, 9, 6, 0}, /* follows the offset Redis holds */
      {DONE, 5, 0},
      {NEXT, 5, 3, RD, 6, ANY, 0}}},
    {"no offset key: every applied entry is published again",
     {{NEXT, 0, 3, TK, ANY, ANY, 0},
      {DONE, 1, HE_ENOENT},
      {NEXT, 1, 3, POS, ANY, ANY, 0},
      {DONE, 2, 0, 0, 4},
      {NEXT, 2, 3, RR, 0, 4, HE_CS_RESET},
      {DONE, 3, 0, 0, 0},
      {NEXT, 3, 3, RP, 0, 4, 0},
      {DONE, 4, 0},
      {NEXT, 4, 3, CM, -1, 4, 0}}},
    {"the applied position moved under an apply: resync",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, ANY},
      {DONE, 3, 0, 1, 6},
      {NEXT, 3, 3, AP, 5, 6, 0},
      {DONE, 4, HE_EPOSITION},
      {NEXT, 4, 3, TK, ANY, ANY, 0}}},
    {"a commit the saved offset refuses: resync",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, ANY},
      {DONE, 3, 0, 1, 6},
      {NEXT, 3, 3, AP, 5, 6, 0},
      {DONE, 4, 0},
      {NEXT, 4, 3, CM, 5, 6, 0},
      {DONE, 5, HE_EMOVED},
      {NEXT, 5, 3, TK, ANY, ANY, 0}}},
    {"fenced: back to standby, nothing more written",
     {{NEXT, 0, 3, TK, ANY, ANY, 0},
      {FENCE, 0, 0, 0, 9},
      {DONE, 1, HE_EFENCED},
      {NEWS, 1, 3, 9, 3},
      /* the lease thread has not stepped down yet: still no take-over */
      {NEXT, 1, 3, PG, ANY, ANY, 0},
      {DONE, 2, 0},
      {NEXT, 2, 0, WT, ANY, ANY, 0},
      {NEXT, 3, 4, TK, ANY, ANY, 0}}},
    {"leadership ends with a batch in hand: its games are forgotten",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, ANY},
      {DONE, 3, 0, 1, 6},
      {NEXT, 3, 3, AP, 5, 6, 0},
      {DONE, 4, 0},
      {NEXT, 4, 0, WT, ANY, ANY, HE_CS_FORGET}}},
    {"infrastructure errors back off, doubling",
     {{NEXT, 0, 3, TK, ANY, ANY, 0},
      {DONE, 0, HE_ECONN},
      {NEXT, 10, 3, WT, ANY, ANY, 0},
      {NEXT, 50, 3, TK, ANY, ANY, 0},
      {DONE, 50, HE_ETIMEDOUT},
      {NEXT, 100, 3, WT, ANY, ANY, 0},
      {NEXT, 150, 3, TK, ANY, ANY, 0},
      {DONE, 150, 0, 0, 1},
      {NEXT, 150, 3, POS, ANY, ANY, 0}}},
    {"a ping without an answer is sent again after half a check",
     {{NEXT, 0, 0, PG, ANY, ANY, 0},
      {DONE, 1, 0},
      {NEXT, 1, 0, PG, ANY, ANY, 0},
      {DONE, 2, HE_ETIMEDOUT},
      {NEXT, 3, 0, WT, ANY, ANY, 0},
      {NEXT, 375, 0, WT, ANY, ANY, 0},
      {NEXT, 376, 0, PG, ANY, ANY, 0}}},
    {"a retried call keeps the other server heard",
     {{NEXT, 0, 3, TK, ANY, ANY, 0},
      {DONE, 1, 0, 0, 5},
      {NEXT, 1, 3, POS, ANY, ANY, 0},
      {DONE, 2, HE_ECONN},
      {NEXT, 52, 3, POS, ANY, ANY, 0},
      {DONE, 400, HE_ECONN}, /* a long wait: Redis went idle */
      {NEXT, 401, 3, PG, ANY, ANY, 0},
      {DONE, 402, 0},
      {NEXT, 403, 3, WT, ANY, ANY, 0},
      {NEXT, 500, 3, POS, ANY, ANY, 0}}},
    {"an idle PostgreSQL is pinged between reads",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, ANY},
      {DONE, 300, 0, 0, 0},
      {NEXT, 300, 3, RD, 5, ANY, 0},
      {DONE, 400, 0, 0, 0},
      {NEXT, 400, 3, PG, ANY, ANY, 0},
      {DONE, 401, 0},
      {NEXT, 401, 3, RD, 5, ANY, 0}}},
    {"a reconnection compares both positions again before reading",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, ANY},
      {DONE, 3, 0, 0, 0},
      {RECONNECTED},
      {NEXT, 3, 3, TK, ANY, ANY, 0}}},
    {"stopping finishes the batch in hand while both answer",
     {LEAD(5, 5),
      {NEXT, 2, 3, RD, 5, ANY, ANY},
      {DONE, 3, 0, 1, 6},
      {STOP},
      {NEXT, 3, 3, AP, 5, 6, 0},
      {DONE, 4, 0},
      {NEXT, 4, 3, CM, 5, 6, 0},
      {DONE, 5, HE_ECONN},
      {NEXT, 5, 3, WT, ANY, ANY, HE_CS_FORGET},
      {NEXT, 500, 3, WT, ANY, ANY, 0}}},
    {"pipelined: a batch commits after the next one applied",
     {PIPE(),
      {DONE, 6, 0},
      {NEXT, 6, 3, CM, 5, 6, 0}, /* the batch before */
      {DONE, 7, 0},
      {NEXT, 7, 3, RD, 7, ANY, 0},
      {DONE, 8, 0, 0, 0}, /* nothing more: commit before blocking */
      {NEXT, 8, 3, CM, 6, 7, 0},
      {DONE, 9, 0},
      {NEXT, 9, 3, RD, 7, ANY, 0}},
     true},
    {"pipelined: a refused commit forgets both batches and resyncs",
     {PIPE(),
      {DONE, 6, 0},
      {NEXT, 6, 3, CM, 5, 6, 0},
      {DONE, 7, HE_EMOVED},
      {DROPPED},
      {NEXT, 7, 3, TK, ANY, ANY, 0}},
     true},
    {"pipelined: a refused apply commits the pending batch, then resyncs",
     {PIPE(),
      {DONE, 6, HE_EPOSITION},
      {NEXT, 6, 3, CM, 5, 6, 0},
      {DONE, 7, 0},
      {NEXT, 7, 3, TK, ANY, ANY, 0}},
     true},
};

ParameterizedTestParameters(consumer_step, scripts)
{
	INDEX_PARAMS(cases);
}

ParameterizedTest(size_t *ip, consumer_step, scripts)
{
	const ccase *c = &cases[*ip];
	he_cs s;
	he_cs_init(&s, 3000);
	he_cs_pipeline(&s, c->pipelined);
	unsigned long long fence = 0;
	const uint64_t ms = 1000000u;
	/* The servers answered just now unless a script says otherwise. */
	s.heard[HE_HEARD_REDIS] = s.heard[HE_HEARD_PG] = 0;
	for (size_t i = 0; c->s[i].op != END; i++) {
		const step *p = &c->s[i];
		uint64_t t = p->t * ms;
		he_cs_next n;
		he_cs_result r = {0};
		switch (p->op) {
		case NEXT:
			n = he_cs_next_call(&s, t, (uint64_t)p->a);
			cr_assert_eq(n.what, p->b, "%s: step %zu: what %d",
				     c->name, i, n.what);
			if (p->c == -1)
				cr_assert_not(n.has_from, "%s: step %zu",
					      c->name, i);
			else if (p->c != ANY)
				cr_assert(n.has_from &&
					      n.from.ms ==
						  (unsigned long long)p->c,
					  "%s: step %zu: from %llu", c->name, i,
					  n.from.ms);
			if (p->d != ANY)
				cr_assert_eq(n.to.ms, (unsigned long long)p->d,
					     "%s: step %zu: to %llu", c->name,
					     i, n.to.ms);
			if (p->e != ANY)
				cr_assert_eq(n.flags, (unsigned)p->e,
					     "%s: step %zu: flags %u", c->name,
					     i, n.flags);
			break;
		case DONE:
			r.rc = (int)p->a;
			r.n = (size_t)p->b;
			r.id = (he_stream_id){(unsigned long long)p->c, 0};
			r.fence = fence;
			he_cs_done(&s, t, &r);
			break;
		case RECONNECTED: he_cs_reconnected(&s); break;
		case FENCE: fence = (unsigned long long)p->c; break;
		case SAWN:
			cr_assert_eq(s.news.saw_fence, (unsigned long long)p->a,
				     "%s: step %zu", c->name, i);
			s.news.saw_fence = 0;
			break;
		case DROPPED:
			cr_assert(s.news.dropped, "%s: step %zu", c->name, i);
			break;
		case NEWS:
			cr_assert_eq(s.news.fenced, (uint64_t)p->a,
				     "%s: step %zu", c->name, i);
			cr_assert_eq(s.news.fence, (unsigned long long)p->b,
				     "%s: step %zu", c->name, i);
			cr_assert_eq(s.news.stood_down, (uint64_t)p->c,
				     "%s: step %zu", c->name, i);
			break;
		case STOP: he_cs_stop(&s); break;
		case SWAP:
			he_cs_swap(&s, (uint64_t)p->a,
				   (he_stream_id){(unsigned long long)p->c, 0});
			break;
		case END: break;
		}
	}
}
