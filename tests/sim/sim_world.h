/*
 * sim_world.h -- one run of the simulation (sim_world.c): a seeded world
 * of instances, links and the two store models, driven to a heal.
 */
#ifndef SIM_WORLD_H
#define SIM_WORLD_H

#include <stdbool.h>

typedef struct sim_report {
	unsigned long long steps;      /* events handled */
	unsigned long long virtual_ms; /* virtual time the run took */
	unsigned long long faults;     /* faults injected */
	unsigned long long fail_ms;    /* when an invariant broke */
	bool lobby_unchecked;	       /* the known gap of note_reapply() */
	char why[256];		       /* which, and how */
} sim_report;

/* Run the world of `seed` to its end; false when an invariant broke
 * (rep->why says which). trace: print every step to stdout. */
bool sim_run(unsigned long long seed, bool trace, sim_report *rep);

#endif
