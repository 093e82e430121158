/* path.c -- see path.h. */
#include "path.h"

#include <stdlib.h>
#include <string.h>

#include <apphost/component.h>

int apphost_path_split(const char *path, char **dir, char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		*dir = strdup(".");
	else if (slash == path)
		*dir = strdup("/");
	else
		*dir = strndup(path, (size_t)(slash - path));
	*base = strdup(slash != NULL ? slash + 1 : path);
	if (*dir == NULL || *base == NULL) {
		free(*dir);
		free(*base);
		*dir = *base = NULL;
		return APPHOST_ENOMEM;
	}
	return 0;
}
