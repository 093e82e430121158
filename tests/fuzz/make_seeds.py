#!/usr/bin/env python3
"""make_seeds.py -- (re)write the seed corpus in tests/fuzz/corpus/.

decoder/: one he_stream_entry per file, items length-prefixed as
fuzz_decoder.c reads them. config/: KEY=VALUE files for fuzz_config.c. dsn/: DSNs for fuzz_dsn.c.
Run from anywhere: python3 tests/fuzz/make_seeds.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def item(b):
    if len(b) < 0xFE:
        return bytes([len(b)]) + b
    if len(b) < 0x10000:
        return b"\xfe" + len(b).to_bytes(2, "little") + b
    return b"\xff" + len(b).to_bytes(3, "little") + b


def entry(*items):
    return b"".join(item(x) for x in items)


DECODER = {
    "ok_oom": entry(b"game_id", b"g1", b"event_type", b"container_oom"),
    "ok_all_fields": entry(b"game_id", b"g-2", b"event_type",
                           b"probe_recovered", b"occurred_at",
                           b"2026-11-26T00:00:00Z", b"container_id",
                           b"c0ffee", b"details", b'{"exit":137}'),
    "ok_utf8_game": entry(b"event_type", b"probe_failed", b"game_id",
                          "игра-☃-𝄞".encode()),
    "missing_game": entry(b"event_type", b"container_exited"),
    "missing_type": entry(b"game_id", b"g1"),
    "empty_game": entry(b"game_id", b"", b"event_type", b"container_oom"),
    "empty_type": entry(b"game_id", b"g1", b"event_type", b""),
    "unknown_type": entry(b"game_id", b"g1", b"event_type",
                          b"container_melted\n\x01\"\\"),
    "odd_count": entry(b"game_id", b"g1", b"event_type"),
    "dup_game": entry(b"game_id", b"a", b"game_id", b"b", b"event_type",
                      b"probe_failed"),
    "bad_utf8_game": entry(b"game_id", b"g\xc3\x28\xed\xa0\x80",
                           b"event_type", b"container_oom"),
    "nul_game": entry(b"game_id", b"g\x001", b"event_type",
                      b"container_oom"),
    "long_game": entry(b"game_id", b"x" * 257, b"event_type",
                       b"container_started"),
    "big_value": entry(b"game_id", b"g1", b"event_type",
                       b"inspect_unhealthy", b"details", b"v" * 70000),
    "big_name": entry(b"n" * 70000, b"v", b"game_id", b"g1", b"event_type",
                      b"probe_failed"),
    "empty": b"",
}

CONFIG = {
    "basic": b"# apphost\nAPPHOST_COMPONENTS=/x/health_events.so\n"
             b"APPHOST_LOG_LEVEL = debug\nHEALTH_EVENTS_BATCH=256\n",
    "quotes": b"APPHOST_REDIS_URL=\"redis://:s3cr3t#pw@127.0.0.1:6380/2\"\n"
              b"APPHOST_POSTGRES_DSN='host=x password=hunter22 dbname=a'\n",
    "url_user": b"APPHOST_REDIS_URL=redis://user:p%40ssword@[::1]:6379/15\n",
    "numbers": b"APPHOST_SHUTDOWN_TIMEOUT_MS= 99999999999\n"
               b"HEALTH_EVENTS_BLOCK_MS=-1\nAPPHOST_POOL_SIZE=0x10\n",
    "bad_key": b"1BAD=x\n",
    "no_eq": b"APPHOST_COMPONENTS\n",
    "nul": b"APPHOST_LOG_LEVEL=in\x00fo\n",
    "typo_and_dup": b"APPHOST_LOG_LEVL=info\nA=1\nA=2\n\r\n\t# c\n",
    "no_newline": b"APPHOST_REDIS_URL=redis://h",
}

DSN = {
    "kw": b"host=db port=5432 dbname=gm user=gm password=Tr0ub&dor",
    "kw_quoted": b"host='my host' password = 'se cret\\' x' user=u",
    "kw_run_on": b"dbname='d'password=secret sslpassword=keyp",
    "uri": b"postgresql://bob:secret@db:5432/gm?sslmode=require",
    "uri_escaped_key": b"postgresql://h/db?pass%77ord=secret",
    "uri_unescaped_at": b"postgresql://app:s3cr@t@host/db",
    "uri_unescaped_slash": b"postgresql://app:12/cr@host/db",
    "uri_bad_escape": b"postgres://u:p%zzword@h/d",
    "uri_multi_host": b"postgresql://u:pw@h1:1,h2:2/d?target_session_attrs=any",
    "dbname_uri": b"dbname='postgresql://u:secret@h/d'",
    "empty": b"",
}


def write(sub, table):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    for name, data in table.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("decoder", DECODER)
write("config", CONFIG)
write("dsn", DSN)
