/*
 * mock_host.h -- the project's suites' names for the installed mock host
 * (include/apphost/mock.h, libapphost-mock): one test double of the
 * services table for the unit suites and the server-backed ones alike.
 */
#ifndef TEST_MOCK_HOST_H
#define TEST_MOCK_HOST_H

#include <apphost/mock.h>

typedef apphost_mock mock_host;

#define mock_host_new		  apphost_mock_new
#define mock_host_free		  apphost_mock_free
#define mock_host_services	  apphost_mock_services
#define mock_host_set_log_level	  apphost_mock_set_log_level
#define mock_host_log_lines	  apphost_mock_log_lines
#define mock_host_log_line	  apphost_mock_log_line
#define mock_host_log_count	  apphost_mock_log_count
#define mock_host_log_max_level	  apphost_mock_log_max_level
#define mock_host_log_longest	  apphost_mock_log_longest
#define mock_host_log_clear	  apphost_mock_log_clear
#define mock_host_config_set	  apphost_mock_config_set
#define mock_host_fail_redis	  apphost_mock_fail_redis
#define mock_host_fail_pg	  apphost_mock_fail_pg
#define mock_host_leases_out	  apphost_mock_leases_out
#define mock_host_broken_releases apphost_mock_broken_releases
#define mock_host_advance	  apphost_mock_advance

#endif /* TEST_MOCK_HOST_H */
