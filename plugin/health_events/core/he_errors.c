/*
 * he_errors.c -- text for error codes and entry outcomes.
 */
#include "core.h"

const char *he_strerror(int code)
{
	switch (code) {
#define HE_TEXT_(name, value, text)                                            \
	case (value): return (text);
		HE_ERRNO_MAP(HE_TEXT_)
#undef HE_TEXT_
	default: return apphost_strerror(code);
	}
}

const char *he_entry_outcome_name(he_entry_outcome o)
{
	switch (o) {
	case HE_ENTRY_TRANSITIONED: return "transitioned";
	case HE_ENTRY_CONFLICT: return "conflict";
	case HE_ENTRY_INVALID_TRANSITION: return "invalid_transition";
	case HE_ENTRY_HEALTH_ONLY: return "health_only";
	case HE_ENTRY_NOT_FOUND: return "not_found";
	case HE_ENTRY_DEAD_LETTERED: return "dead_lettered";
	}
	return "unknown";
}
