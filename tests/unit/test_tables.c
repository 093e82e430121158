/*
 * test_tables.c -- the event-type table is DESIGN §4 verbatim; the
 * transition table holds what the consumer needs and never a
 * self-transition; code-to-text functions.
 */
#include "core.h"
#include "he_events.h"
#include "he_transitions.h"

#include "unit.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

Test(tables, events_match_design_section_4)
{
	static const he_event_type want[] = {
	    {"container_started", "healthy", NULL, NULL},
	    {"probe_recovered", "healthy", "engine_unreachable", "running"},
	    {"container_exited", "exited", "running", "engine_unreachable"},
	    {"container_oom", "oom", "running", "engine_unreachable"},
	    {"container_disappeared", "disappeared", "running",
	     "engine_unreachable"},
	    {"inspect_unhealthy", "unhealthy", NULL, NULL},
	    {"probe_failed", "probe_failed", NULL, NULL},
	};
	for (size_t i = 0; i < HE_EVENT_TYPE_COUNT; i++) {
		const he_event_type *t =
		    he_event_lookup(want[i].name, strlen(want[i].name));
		cr_assert_not_null(t, "%s", want[i].name);
		cr_assert_eq(t, he_event_at(i));
		cr_assert_str_eq(t->summary, want[i].summary);
		if (want[i].to == NULL) {
			cr_assert_null(t->to, "%s", t->name);
			cr_assert_null(t->expected, "%s", t->name);
		} else {
			cr_assert_str_eq(t->expected, want[i].expected);
			cr_assert_str_eq(t->to, want[i].to);
			cr_assert(he_transition_allowed(t->expected, t->to),
				  "%s", t->name);
		}
		cr_assert_geq(he_summary_index(t->summary), 0);
	}
	cr_assert_null(he_event_at(HE_EVENT_TYPE_COUNT));
	cr_assert_null(he_event_lookup("container_oom", 9));
	cr_assert_null(he_event_lookup("container_oomx", 14));
	cr_assert_null(he_event_lookup(NULL, 0));
	cr_assert_eq(he_summary_count(), 6);
	cr_assert_eq(he_summary_index("custom"), -1);
	cr_assert_null(he_summary_at(6));
}

struct tr_case {
	const char *from, *to;
	bool allowed;
};

static const struct tr_case transitions_cases[] = {
    {"running", "engine_unreachable", true},
    {"engine_unreachable", "running", true},
    {"starting", "running", true},
    {"running", "generation_in_progress", true},
    {"generation_in_progress", "running", true},
    {"generation_in_progress", "generation_failed", true},
    {"running", "finished", true},
    {"stopped", "finished", true},
    {"generation_in_progress", "engine_unreachable", false},
    {"stopped", "engine_unreachable", false},
    {"finished", "running", false},
    {"finished", "engine_unreachable", false},
    {"starting", "engine_unreachable", false},
    {"running", "bogus", false},
    {"bogus", "running", false},
};

ParameterizedTestParameters(tables, transitions)
{
	INDEX_PARAMS(transitions_cases);
}

ParameterizedTest(size_t *ip, tables, transitions)
{
	const struct tr_case *c = &transitions_cases[*ip];
	cr_assert_eq(he_transition_allowed(c->from, c->to), c->allowed,
		     "%s -> %s", c->from, c->to);
}

Test(tables, self_transition_never_valid)
{
	for (int s = 0; s < HE_STATUS_COUNT; s++) {
		const char *n = he_status_name((he_status)s);
		cr_assert_not_null(n);
		cr_assert_eq(he_status_parse(n), s);
		cr_assert_not(he_transition_allowed(n, n), "%s", n);
	}
	cr_assert_null(he_status_name(HE_STATUS_COUNT));
	cr_assert_eq(he_status_parse("nope"), -1);
	cr_assert_not(he_transition_allowed(NULL, "running"));
	/* finished is terminal */
	for (int s = 0; s < HE_STATUS_COUNT; s++)
		cr_assert_not(he_transition_allowed(
		    "finished", he_status_name((he_status)s)));
}

Test(tables, names)
{
	cr_assert_str_eq(he_strerror(HE_ECONN), "connection failed");
	cr_assert_str_eq(he_strerror(HE_ENOENT), "not found");
	cr_assert_str_eq(he_strerror(HE_EREFUSED), "refused by server");
	cr_assert_str_eq(he_strerror(-999), "unknown error");
	cr_assert_str_eq(he_entry_outcome_name(HE_ENTRY_TRANSITIONED),
			 "transitioned");
	cr_assert_str_eq(he_entry_outcome_name(HE_ENTRY_CONFLICT), "conflict");
	cr_assert_str_eq(he_entry_outcome_name(HE_ENTRY_INVALID_TRANSITION),
			 "invalid_transition");
	cr_assert_str_eq(he_entry_outcome_name(HE_ENTRY_HEALTH_ONLY),
			 "health_only");
	cr_assert_str_eq(he_entry_outcome_name(HE_ENTRY_NOT_FOUND),
			 "not_found");
	cr_assert_str_eq(he_entry_outcome_name(HE_ENTRY_DEAD_LETTERED),
			 "dead_lettered");
	cr_assert_str_eq(he_entry_outcome_name((he_entry_outcome)0), "unknown");
}
