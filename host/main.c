/*
 * main.c -- apphost: command line, configuration, then hand over to the
 * lifecycle and the main loop. Everything else lives in apphost_core.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <uv.h>

#include "build_info.h"
#include "config.h"
#include "dsn.h"
#include "hotswap.h"
#include "http.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "pool_pg.h"
#include "pool_redis.h"
#include "run.h"
#include "sentinel.h"
#include "services.h"
#include "url.h"

#ifndef APPHOST_VERSION
#define APPHOST_VERSION "0.0.0"
#endif

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

#define DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: apphost [--config FILE] [--check [--connect]]\n"
	    "       apphost --help | --version\n"
	    "\n"
	    "Loads the components listed in APPHOST_COMPONENTS, checks their\n"
	    "ABI, initialises and starts them in order, and stops them in\n"
	    "reverse order on SIGINT or SIGTERM.\n"
	    "\n"
	    "Options:\n"
	    "  -c, --config FILE  read KEY=VALUE lines from FILE ('#' starts "
	    "a\n"
	    "                     comment line); the environment overrides it\n"
	    "      --check        load, verify and initialise every "
	    "component,\n"
	    "                     stop them again and exit; starts no work\n"
	    "      --connect      with --check: also connect, and let each\n"
	    "                     component check that it could work "
	    "(servers,\n"
	    "                     permissions), writing nothing\n"
	    "  -h, --help         this text\n"
	    "  -V, --version      name, version and component ABI\n"
	    "\n"
	    "Configuration (environment or --config; an empty value means the\n"
	    "default):\n");
	for (const struct apphost_config_key *k = apphost_config_keys;
	     k->key != NULL; k++) {
		const char *def = k->def == NULL      ? "none, required"
				  : k->def[0] == '\0' ? "empty"
						      : k->def;

		fprintf(f, "  %-34s default: %s\n      %s\n", k->key, def,
			k->meaning);
	}
	fprintf(
	    f,
	    "\n"
	    "Signals:\n"
	    "  SIGINT, SIGTERM  stop all components within\n"
	    "                   APPHOST_SHUTDOWN_TIMEOUT_MS, then exit; a stop "
	    "still\n"
	    "                   running at the deadline is reported and left "
	    "behind\n"
	    "  the same again   while stopping: exit at once\n"
	    "  SIGHUP           with APPHOST_HOT_SWAP=1: swap every component "
	    "now;\n"
	    "                   otherwise logged and ignored\n"
	    "\n"
	    "Exit status:\n"
	    "  0    clean stop after SIGINT/SIGTERM; --check passed; --help, "
	    "--version\n"
	    "  1    configuration error, a component refused or failed to\n"
	    "       init/start, --check failed, or a stop failed or overran\n"
	    "  2    usage error\n"
	    "  130  second SIGINT during shutdown (143: second SIGTERM)\n"
	    "\n"
	    "Component files must be owned by root or the host's user, not be\n"
	    "group- or world-writable nor symbolic links, and so must every\n"
	    "directory above them (a sticky one such as /tmp may be "
	    "writable).\n");
}

static void version(void)
{
	printf("apphost %s (component ABI %d.%d; hiredis %d.%d, libpq %d, "
	       "libuv %s)\n",
	       APPHOST_VERSION, APPHOST_ABI_MAJOR, APPHOST_ABI_MINOR,
	       HIREDIS_MAJOR, HIREDIS_MINOR, PQlibVersion(),
	       uv_version_string());
}

static void warn_cb(const char *text)
{
	apphost_log(APPHOST_LOG_WARN, NULL, "configuration", "detail=\"%s\"",
		    text);
}

/* Log a bad value without its secrets. */
static void bad_value(const char *key, const char *value, const char *why)
{
	char *red = apphost_redact(value != NULL ? value : "");

	apphost_log(APPHOST_LOG_ERROR, NULL, "bad configuration",
		    "key=%s value=\"%s\" err=\"%s\"", key,
		    red != NULL ? red : "(redacted)", why);
	free(red);
}

/*
 * A URL or DSN that does not parse, shown as its own module allows
 * (`shown`: at most host:port/db, or a "value withheld" note): a malformed
 * one cannot be told apart from its password ("redis:/:pw@h"). `why` is
 * the parser's fixed reason, which quotes nothing of it.
 */
static void bad_secret(const char *key, const char *shown, const char *why)
{
	apphost_log(APPHOST_LOG_ERROR, NULL, "bad configuration",
		    "key=%s value=\"%s\" err=\"%s\"", key, shown, why);
}

static const char *get_or(const struct apphost_config *cfg, const char *key,
			  const char *def)
{
	const char *v = apphost_config_get(cfg, key);

	return v != NULL && v[0] != '\0' ? v : def;
}

/*
 * Apply APPHOST_LOG_LEVEL and APPHOST_LOG_FORMAT where they parse.
 * Returns 0, or APPHOST_EINVAL when one does not (logged when `report`).
 */
static int log_settings(const struct apphost_config *cfg, bool report)
{
	const char *lv = get_or(cfg, "APPHOST_LOG_LEVEL", "info");
	const char *fm = get_or(cfg, "APPHOST_LOG_FORMAT", "text");
	int level = apphost_log_level_parse(lv);
	int format = apphost_log_format_parse(fm);

	if (level >= 0)
		apphost_log_set_level(level);
	if (format >= 0)
		apphost_log_set_format(format);
	if (report && level < 0)
		bad_value("APPHOST_LOG_LEVEL", lv,
			  "expected debug, info, warn or error");
	else if (report && format < 0)
		bad_value("APPHOST_LOG_FORMAT", fm, "expected text or json");
	return level < 0 || format < 0 ? APPHOST_EINVAL : 0;
}

/*
 * Serve /healthz, /readyz, /metrics on APPHOST_HTTP_ADDR: unset means the
 * default address, where a busy port is only a warning (several hosts on
 * one machine); set but empty disables; an explicit address that cannot
 * be served is a startup error.
 */
static int start_http(const struct apphost_config *cfg,
		      struct apphost_http **http)
{
	const char *v = apphost_config_get(cfg, "APPHOST_HTTP_ADDR");
	bool dflt = v == NULL;
	char err[256];
	int rc;

	if (dflt)
		v = APPHOST_HTTP_DEFAULT_ADDR;
	if (v[0] == '\0') {
		apphost_log(APPHOST_LOG_INFO, NULL, "http endpoint disabled",
			    "key=APPHOST_HTTP_ADDR");
		return 0;
	}
	rc = apphost_http_start(v, apphost_metrics_default(), http, err,
				sizeof(err));
	if (rc < 0 && dflt && rc != APPHOST_EINVAL) {
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "http endpoint not served: default address busy",
			    "addr=%s err=\"%s\" hint=\"set APPHOST_HTTP_ADDR\"",
			    v, err);
		return 0;
	}
	if (rc < 0) {
		bad_value("APPHOST_HTTP_ADDR", v, err);
		return rc;
	}
	apphost_log(APPHOST_LOG_INFO, NULL, "http endpoint listening",
		    "addr=%s port=%u paths=\"/healthz /readyz /metrics\"", v,
		    (unsigned)apphost_http_port(*http));
	return 0;
}

/* APPHOST_REDIS_URL is wrong: shown as host:port/db at most. */
static void bad_redis_url(const char *url, const char *why)
{
	char shown[300];

	apphost_redis_url_shown(url, shown, sizeof(shown));
	bad_secret("APPHOST_REDIS_URL", shown, why);
}

/*
 * The Redis pool: APPHOST_REDIS_URL, and with APPHOST_REDIS_SENTINELS the
 * Sentinels (then the URL gives only password and db). A bad or
 * incomplete setting is logged with its key. 0 or negative.
 */
static int redis_pool(const struct apphost_config *cfg, uint32_t pool_size,
		      struct apphost_redis_pool **out)
{
	const char *url = get_or(cfg, "APPHOST_REDIS_URL", DEFAULT_REDIS_URL);
	const char *list = get_or(cfg, "APPHOST_REDIS_SENTINELS", "");
	const char *master = get_or(cfg, "APPHOST_REDIS_SENTINEL_MASTER", "");
	const char *pw = get_or(cfg, "APPHOST_REDIS_SENTINEL_PASSWORD", "");
	struct apphost_redis_sentinel sen = {list, master, pw};
	struct apphost_sentinel_addr *addrs;
	struct apphost_redis_url u;
	char err[512];
	size_t n;

	if (list[0] == '\0' && (master[0] != '\0' || pw[0] != '\0')) {
		bad_value("APPHOST_REDIS_SENTINELS", list,
			  master[0] != '\0'
			      ? "required with APPHOST_REDIS_SENTINEL_MASTER"
			      : "required with "
				"APPHOST_REDIS_SENTINEL_PASSWORD");
		return APPHOST_EINVAL;
	}
	if (list[0] != '\0') {
		/* Say which key is wrong: check each on its own first. */
		if (apphost_sentinels_parse(list, &addrs, &n, err,
					    sizeof(err)) < 0) {
			bad_value("APPHOST_REDIS_SENTINELS", list, err);
			return APPHOST_EINVAL;
		}
		free(addrs);
		if (master[0] == '\0') {
			bad_value("APPHOST_REDIS_SENTINEL_MASTER", master,
				  "required with APPHOST_REDIS_SENTINELS");
			return APPHOST_EINVAL;
		}
		if (apphost_sentinel_master_check(master, err, sizeof(err)) <
		    0) {
			bad_value("APPHOST_REDIS_SENTINEL_MASTER", master, err);
			return APPHOST_EINVAL;
		}
	}
	if (apphost_redis_url_parse(url, &u, err, sizeof(err)) < 0) {
		bad_redis_url(url, err);
		return APPHOST_EINVAL;
	}
	apphost_redis_url_clear(&u);
	if (apphost_redis_pool_new_sentinel(url, list[0] != '\0' ? &sen : NULL,
					    pool_size, out, err,
					    sizeof(err)) < 0) {
		bad_redis_url(url, err);
		return APPHOST_EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'k'},
	    {"connect", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	bool check = false, connect = false;
	struct apphost_config *cfg = NULL;
	struct apphost_ctx ctx = {0};
	struct apphost_comp_list comps = {0};
	struct apphost_hotswap *hs = NULL;
	struct apphost_run_hooks hooks;
	struct apphost_http *http = NULL;
	char err[1024];
	const char *v;
	uint32_t pool_size, hot_swap;
	int opt, rc, status = EXIT_FAIL;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'k': check = true; break;
		case 'C': connect = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': version(); return EXIT_OK;
		case ':':
			fprintf(stderr, "apphost: %s needs an argument\n",
				argv[optind - 1]);
			fprintf(stderr, "Try 'apphost --help'.\n");
			return EXIT_USAGE;
		default:
			/* Named, not its value: --dsn=URI holds a password. */
			if (optopt != 0)
				fprintf(stderr,
					"apphost: unknown option '-%c'\n",
					optopt);
			else
				fprintf(stderr,
					"apphost: unknown option '%.*s'\n",
					(int)strcspn(argv[optind - 1], "="),
					argv[optind - 1]);
			fprintf(stderr, "Try 'apphost --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (connect && !check) {
		fprintf(stderr, "apphost: --connect only goes with --check\n");
		fprintf(stderr, "Try 'apphost --help'.\n");
		return EXIT_USAGE;
	}
	if (optind < argc) {
		/* Not echoed: it may be a DSN or URL with a password. */
		fprintf(stderr,
			"apphost: unexpected argument %d; the configuration "
			"comes from the environment or --config\n",
			optind);
		fprintf(stderr, "Try 'apphost --help'.\n");
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);

	if (apphost_config_new(&cfg) < 0) {
		apphost_log(APPHOST_LOG_ERROR, NULL, "out of memory", NULL);
		return EXIT_FAIL;
	}
	/* The level first, so the file's own warnings are filtered by it
	 * when it comes from the environment. */
	(void)log_settings(cfg, false);
	if (config_path != NULL) {
		rc = apphost_config_load_file(cfg, config_path, err,
					      sizeof(err), warn_cb);
		if (rc < 0) {
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "cannot read configuration", "err=\"%s\"",
				    err);
			goto out;
		}
	}
	if (log_settings(cfg, true) < 0)
		goto out;
	if (config_path != NULL)
		apphost_log(APPHOST_LOG_DEBUG, NULL, "configuration read",
			    "file=%s", config_path);

	if (apphost_config_get_u32(cfg, "APPHOST_SHUTDOWN_TIMEOUT_MS", 10000, 1,
				   3600000, &ctx.shutdown_timeout_ms, err,
				   sizeof(err)) < 0 ||
	    apphost_config_get_u32(cfg, "APPHOST_POOL_SIZE", 8, 1, 1024,
				   &pool_size, err, sizeof(err)) < 0 ||
	    apphost_config_get_u32(cfg, "APPHOST_HOT_SWAP", 0, 0, 1, &hot_swap,
				   err, sizeof(err)) < 0) {
		apphost_log(APPHOST_LOG_ERROR, NULL, "bad configuration",
			    "err=\"%s\"", err);
		goto out;
	}
	if (hot_swap) {
		if (apphost_hotswap_new(&hs, err, sizeof(err)) < 0) {
			apphost_log(APPHOST_LOG_ERROR, NULL,
				    "hot swap: cannot start", "err=\"%s\"",
				    err);
			goto out;
		}
		apphost_log(APPHOST_LOG_INFO, NULL,
			    "hot swap enabled: components load from private "
			    "copies",
			    "dir=%s", apphost_hotswap_dir(hs));
	}
	v = apphost_config_get(cfg, "APPHOST_COMPONENTS");
	if (v == NULL || v[0] == '\0') {
		apphost_log(APPHOST_LOG_ERROR, NULL, "bad configuration",
			    "key=APPHOST_COMPONENTS err=\"required: "
			    "comma-separated .so paths\"");
		goto out;
	}

	ctx.cfg = cfg;
	if (redis_pool(cfg, pool_size, &ctx.redis) < 0)
		goto out;
	v = get_or(cfg, "APPHOST_POSTGRES_DSN", "");
	if (apphost_pg_pool_new(v, pool_size, &ctx.pg, err, sizeof(err)) < 0) {
		bad_secret("APPHOST_POSTGRES_DSN", APPHOST_DSN_UNPARSABLE, err);
		goto out;
	}
	apphost_log(
	    APPHOST_LOG_INFO, NULL, check ? "checking" : "starting",
	    "version=%s abi=%d.%d pid=%ld redis=%s postgres=\"%s\" "
	    "pool_size=%u shutdown_timeout_ms=%u connect=on-first-lease",
	    APPHOST_VERSION, APPHOST_ABI_MAJOR, APPHOST_ABI_MINOR,
	    (long)getpid(), apphost_redis_pool_addr(ctx.redis),
	    apphost_pg_pool_addr(ctx.pg), pool_size, ctx.shutdown_timeout_ms);

	(void)apphost_build_info_host(apphost_metrics_default(),
				      APPHOST_VERSION);
	if (!check && start_http(cfg, &http) < 0)
		goto out;
	if (apphost_lifecycle_load_all_with(
		apphost_config_get(cfg, "APPHOST_COMPONENTS"),
		hs != NULL ? apphost_hotswap_load : NULL, hs, &comps) < 0)
		goto out;
	if (apphost_lifecycle_init_all(&comps, &ctx, ctx.shutdown_timeout_ms) <
	    0)
		goto out;
	if (check) {
		int checked = connect ? apphost_lifecycle_check_all(&comps) : 0;

		rc =
		    apphost_lifecycle_stop_all(&comps, ctx.shutdown_timeout_ms);
		if (rc == 0 && checked == 0) {
			apphost_log(APPHOST_LOG_INFO, NULL, "check passed",
				    "components=%zu", comps.n);
			status = EXIT_OK;
		}
		goto out;
	}
	if (apphost_lifecycle_start_all(&comps, ctx.shutdown_timeout_ms) < 0)
		goto out;
	if (hs != NULL)
		apphost_hotswap_hooks(hs, &hooks);
	rc = apphost_run(&comps, &ctx, hs != NULL ? &hooks : NULL);
	if (rc == 0) {
		apphost_log(APPHOST_LOG_INFO, NULL, "stopped", NULL);
		status = EXIT_OK;
	}

out:
	if (status != EXIT_OK)
		apphost_log(APPHOST_LOG_ERROR, NULL,
			    check ? "check failed" : "exiting with failure",
			    "status=%d", status);
	if (apphost_lifecycle_stuck(&comps) > 0 ||
	    apphost_hotswap_stuck(hs) > 0) {
		/* A stop is still running and may use the pools: leave
		 * everything as it is and exit without cleanup. */
		fflush(NULL);
		_exit(status);
	}
	apphost_http_stop(http);
	apphost_lifecycle_free_all(&comps);
	apphost_hotswap_free(hs);
	apphost_redis_pool_free(ctx.redis);
	apphost_pg_pool_free(ctx.pg);
	apphost_config_free(cfg);
	return status;
}
