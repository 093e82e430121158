/* record.h -- test components append "event name" lines to the file named
 * by TEST_ORDER_LOG (when set), so tests can check call order. */
#ifndef TEST_RECORD_H
#define TEST_RECORD_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <apphost/component.h>

static inline void record(const apphost_services *svc, const char *event,
			  const char *name)
{
	const char *path = svc->config_get(svc->host, "TEST_ORDER_LOG");
	char line[128];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return;
	n = snprintf(line, sizeof(line), "%s %s\n", event, name);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0) {
		/* best effort */
	}
	close(fd);
}

#endif
