/*
 * fuzz_config.c -- libFuzzer harness for the host's configuration file
 * parser (host/config.c, apphost_config_load_file) and what the host does
 * with the values it reads: numbers (apphost_config_get_u32), the Redis
 * URL parser and log redaction (host/url.c).
 *
 * The input is the file's bytes, written to a memfd and read back through
 * /proc/self/fd/N (the parser takes a path). Contract checks abort: a
 * failed load leaves a non-empty error; a parsed password that occurs
 * once in the URL never survives apphost_redact() of it, nor the URL as
 * shown (apphost_redis_url_shown), which never holds userinfo.
 */
#include "config.h"
#include "url.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_config: contract broken: %s\n", what);
		abort();
	}
}

static int occurrences(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void check_url(const char *url)
{
	struct apphost_redis_url u;
	char err[256] = "", shown[300];

	apphost_redis_url_shown(url, shown, sizeof(shown));
	check(strchr(shown, '@') == NULL, "userinfo in the URL shown");
	if (apphost_redis_url_parse(url, &u, err, sizeof(err)) < 0) {
		check(err[0] != '\0', "url parse failed without a reason");
		return;
	}
	if (u.password != NULL && strlen(u.password) >= 6 &&
	    occurrences(url, u.password) == 1) {
		char *red = apphost_redact(url);
		check(red == NULL || strstr(red, u.password) == NULL,
		      "password survives apphost_redact");
		check(strstr(shown, u.password) == NULL,
		      "password survives apphost_redis_url_shown");
		free(red);
	}
	apphost_redis_url_clear(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct apphost_config *cfg;
	char err[512] = "";

	if (fd < 0) {
		fd = memfd_create("fuzz_config", 0);
		check(fd >= 0, "memfd_create");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	check(ftruncate(fd, 0) == 0 &&
		  pwrite(fd, data, size, 0) == (ssize_t)size,
	      "write the input");
	if (apphost_config_new(&cfg) < 0)
		return 0;
	int r = apphost_config_load_file(cfg, path, err, sizeof(err), NULL);
	if (r < 0) {
		check(err[0] != '\0', "load failed without a reason");
	} else {
		for (const struct apphost_config_key *k = apphost_config_keys;
		     k->key != NULL; k++) {
			const char *v = apphost_config_get(cfg, k->key);
			uint32_t n;
			if (v == NULL)
				continue;
			if (apphost_config_get_u32(cfg, k->key, 0, 0, 1000000,
						   &n, err, sizeof(err)) == 0)
				check(n <= 1000000, "number out of range");
			char *red = apphost_redact(v);
			free(red);
		}
		const char *url = apphost_config_get(cfg, "APPHOST_REDIS_URL");
		if (url != NULL)
			check_url(url);
	}
	apphost_config_free(cfg);
	return 0;
}
