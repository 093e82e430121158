/* process_metrics.c -- see process_metrics.h. */
#include "process_metrics.h"

#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* /proc/self/stat after the command name: the fields proc(5) numbers
 * 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss). */
struct stat_fields {
	unsigned long long utime, stime, start, vsize, rss;
};

static int read_stat(struct stat_fields *out)
{
	char buf[2048];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;

	if (f == NULL)
		return APPHOST_EIO;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the name is in parentheses and may hold spaces or ')' itself */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return APPHOST_EIO;
	p++;
	unsigned long long v[22] = {0};
	/* fields 3.. follow; field k is v[k - 3] */
	for (int k = 0; k < 22; k++) {
		char *end;

		while (*p == ' ')
			p++;
		if (k == 0) { /* the state, a letter */
			p += *p != '\0';
			continue;
		}
		v[k] = strtoull(p, &end, 10);
		if (end == p)
			return APPHOST_EIO;
		p = end;
	}
	*out = (struct stat_fields){v[11], v[12], v[19], v[20], v[21]};
	return 0;
}

/* The boot time, seconds since the epoch (/proc/stat btime), or 0. */
static unsigned long long boot_time(void)
{
	char line[256];
	unsigned long long bt = 0;
	FILE *f = fopen("/proc/stat", "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %llu", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

/* Open descriptors, not counting the one this count uses; -1 on error. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

enum { CPU, RSS, VSZ, FDS, MAX_FDS, START, NMETRICS };

static const struct {
	int type;
	const char *name, *help;
} spec[NMETRICS] = {
    [CPU] = {APPHOST_METRIC_COUNTER, "process_cpu_seconds_total",
	     "Total user and system CPU time spent in seconds."},
    [RSS] = {APPHOST_METRIC_GAUGE, "process_resident_memory_bytes",
	     "Resident memory size in bytes."},
    [VSZ] = {APPHOST_METRIC_GAUGE, "process_virtual_memory_bytes",
	     "Virtual memory size in bytes."},
    [FDS] = {APPHOST_METRIC_GAUGE, "process_open_fds",
	     "Number of open file descriptors."},
    [MAX_FDS] = {APPHOST_METRIC_GAUGE, "process_max_fds",
		 "Maximum number of open file descriptors."},
    [START] = {APPHOST_METRIC_GAUGE, "process_start_time_seconds",
	       "Start time of the process since unix epoch in seconds."},
};

int apphost_process_metrics_collect(struct apphost_metrics *r)
{
	struct apphost_metric *m[NMETRICS] = {0};
	struct stat_fields st;
	struct rlimit rl;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds;
	int rc = 0;

	/* a lookup per scrape: scrapes are seconds apart */
	for (int i = 0; i < NMETRICS; i++)
		(void)apphost_metrics_get(r, spec[i].type, spec[i].name,
					  spec[i].help, NULL, NULL, 0, &m[i]);
	if (read_stat(&st) == 0 && tck > 0 && page > 0) {
		unsigned long long bt = boot_time();

		apphost_metric_sample(m[CPU],
				      (double)(st.utime + st.stime) / tck);
		apphost_metric_set(m[RSS], (double)st.rss * (double)page);
		apphost_metric_set(m[VSZ], (double)st.vsize);
		if (bt > 0)
			apphost_metric_set(m[START],
					   (double)bt + (double)st.start / tck);
	} else {
		rc = APPHOST_EIO;
	}
	if ((fds = open_fds()) >= 0)
		apphost_metric_set(m[FDS], (double)fds);
	else
		rc = APPHOST_EIO;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		apphost_metric_set(m[MAX_FDS], (double)rl.rlim_cur);
	return rc;
}
