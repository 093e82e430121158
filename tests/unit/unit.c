/*
 * unit.c -- fixture and entry builders shared by the unit test files.
 */
#include "unit.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

fixture fx;

void b_init(batch *b, unsigned base)
{
	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < B_MAX; i++) {
		snprintf(b->ids[i], sizeof(b->ids[i]), "%u-%zu", base, i);
		b->e[i].id = b->ids[i];
		b->e[i].items = b->items[i];
		b->e[i].lens = b->lens[i];
	}
}

size_t b_fields(batch *b, size_t nitems, ...)
{
	va_list ap;
	size_t i = b->n++;

	cr_assert(i < B_MAX && nitems <= B_ITEMS);
	va_start(ap, nitems);
	for (size_t k = 0; k < nitems; k++) {
		const char *s = va_arg(ap, const char *);
		b->items[i][k] = s;
		b->lens[i][k] = strlen(s);
	}
	va_end(ap);
	b->e[i].nitems = nitems;
	return i;
}

size_t b_add(batch *b, const char *game_id, const char *event_type)
{
	return b_fields(b, 6, "event_type", event_type, "game_id", game_id,
			"occurred_at", "1700000000000");
}

void b_set(batch *b, size_t i, size_t item, const char *p, size_t len)
{
	b->items[i][item] = p;
	b->lens[i][item] = len;
}

void fx_setup(void)
{
	memset(&fx, 0, sizeof(fx));
	fx.mh = mock_host_new();
	fx.ms = mem_store_new();
	fx.stream = mem_stream_new();
	cr_assert(fx.mh && fx.ms && fx.stream);
	cr_assert_eq(he_core_new(mock_host_services(fx.mh), &fx.core), 0);
	fx.store = mem_store_port(fx.ms);
}

void fx_teardown(void)
{
	he_outbox_free(&fx.box);
	he_core_free(fx.core);
	mem_stream_free(fx.stream);
	mem_store_free(fx.ms);
	mock_host_free(fx.mh);
}

int fx_run(batch *b)
{
	he_outbox_clear(&fx.box);
	memset(fx.reps, 0, sizeof(fx.reps));
	return he_core_process(fx.core, b->e, b->n, &fx.store, &fx.box,
			       fx.reps);
}

const char *fx_payload(size_t k)
{
	return k < fx.box.nsnapshots ? fx.box.snapshots[k].payload : NULL;
}

const char *expect_json(char *buf, size_t cap, const char *game_id,
			const char *status, const char *health, int turn)
{
	snprintf(buf, cap,
		 "{\"game_id\":\"%s\",\"runtime_status\":\"%s\","
		 "\"engine_health_summary\":\"%s\",\"current_turn\":%d,"
		 "\"player_turn_stats\":null}",
		 game_id, status, health, turn);
	return buf;
}
