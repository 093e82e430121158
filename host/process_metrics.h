/*
 * process_metrics.h -- the metrics every Prometheus client library
 * exports about its process, with the process collector's names and
 * meanings, read from /proc at scrape time:
 *
 *   process_cpu_seconds_total       user + system CPU time
 *   process_resident_memory_bytes   resident set size
 *   process_virtual_memory_bytes    virtual memory size
 *   process_open_fds                open file descriptors
 *   process_max_fds                 the soft RLIMIT_NOFILE
 *   process_start_time_seconds      start, seconds since the Unix epoch
 *
 * Linux only (/proc); a value that cannot be read is left as it was.
 */
#ifndef APPHOST_HOST_PROCESS_METRICS_H
#define APPHOST_HOST_PROCESS_METRICS_H

struct apphost_metrics;

/*
 * Register the series in r (first call) and set them from /proc now.
 * Returns 0, or APPHOST_EIO when /proc/self could not be read (what
 * could be read is set). Any thread; called by /metrics before it
 * renders.
 */
int apphost_process_metrics_collect(struct apphost_metrics *r);

#endif
