/*
 * he_errors.c -- text for error codes and entry outcomes.
 */
#include "core.h"

const char *he_strerror(int code)
{
	switch (code) {
	case HE_OK: return "success";
	case HE_EINVAL: return "invalid argument";
	case HE_ENOMEM: return "out of memory";
	case HE_ETIMEDOUT: return "timed out";
	case HE_ECONN: return "connection failed";
	case HE_EIO: return "I/O error";
	case HE_ESTATE: return "wrong state";
	case HE_ENOTSUP: return "not supported";
	case HE_EPROTO: return "protocol error";
	case HE_ENOENT: return "not found";
	case HE_EREFUSED: return "refused by server";
	case HE_EFENCED: return "fenced by a newer leader";
	case HE_EMOVED: return "saved offset moved";
	case HE_EDATA: return "data refused by the store";
	default: return "unknown error";
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
