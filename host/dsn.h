/*
 * dsn.h -- what of a PostgreSQL DSN and of libpq's messages may be logged.
 *
 * The display text is rebuilt from what libpq itself parses
 * (PQconninfoParse), never by pattern-matching the input: the keyword and
 * URI forms, quoting, percent-escaped keys (?pass%77ord=) and a value run
 * into the next keyword ('d'password=x) are all libpq's business, so
 * whatever libpq takes as password or sslpassword is simply not written.
 *
 * libpq's own messages are never passed on: a parse error quotes the
 * offending token (a piece of the password) and a connect error quotes
 * the host, which is a piece of the password when a URI's password holds
 * an unescaped '@' ("postgresql://app:s3cr@t@host/db": host "t@host").
 * They are summarised into fixed phrases instead.
 *
 * Pure string code on top of libpq's parser: no I/O, no logging, any
 * thread.
 */
#ifndef APPHOST_HOST_DSN_H
#define APPHOST_HOST_DSN_H

#include <stddef.h>

#include <apphost/component.h>

/* Shown in place of a DSN libpq cannot parse, or one withheld. */
#define APPHOST_DSN_UNPARSABLE "(unparsable DSN: value withheld)"

/*
 * Check `dsn` (conninfo or URI; "" is libpq's defaults) and rebuild it
 * for display: "key=value ..." in conninfo syntax with every secret
 * option (password, sslpassword: libpq marks them with dispchar '*')
 * left out. Returns
 *   0               *shown is the rebuilt text;
 *   APPHOST_EINVAL  libpq cannot parse it, or its host, hostaddr or port
 *                   holds what a mis-split URI password leaves there ('@'
 *                   in a host, a port that is not a number): *shown is
 *                   APPHOST_DSN_UNPARSABLE and err a fixed reason that
 *                   quotes nothing of the DSN;
 *   APPHOST_ENOMEM  *shown is NULL.
 * *shown is malloc()ed (the caller frees it). err may be NULL.
 */
int apphost_dsn_redact(const char *dsn, char **shown, char *err, size_t errlen);

/*
 * Summarise a libpq connect error (PQerrorMessage text) into err as a
 * fixed phrase ("connection refused", "authentication failed", "TLS:
 * server certificate does not match host name", ...): nothing of `msg` is
 * copied, since libpq quotes hosts, users, tokens of the DSN and file
 * paths in it, and the phrases are matched with those quoted parts
 * removed. Returns the class: APPHOST_EAUTH (credentials refused),
 * APPHOST_EPERM (a privilege refused, e.g. CONNECT), else APPHOST_ECONN.
 * Any thread.
 */
int apphost_dsn_error_summary(const char *msg, char *err, size_t errlen);

#endif
