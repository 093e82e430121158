/* redis_scripts.c -- see redis_scripts.h. */
#include "redis_scripts.h"

/*
 * The fence key holds the last writer's token: "<epoch> <holder token>"
 * (a bare "<epoch>" from before tokens, or from a writer without one). A
 * write with ARGV[1] = "<epoch> <token>" is refused (FENCED <epoch>) when
 * its epoch is below the fence's, or equal with another token: an epoch
 * the lease handed out twice (a PostgreSQL rollback) is still not used by
 * two instances. FENCE_RAISE then records ours when it is higher.
 */
#define FENCE_CHECK                                                            \
	"local f = redis.call('GET', KEYS[1]) or '0'\n"                        \
	"local fence = tonumber(string.match(f, '^%d+')) or 0\n"               \
	"local holder = string.match(f, '^%d+ (.+)$') or ''\n"                 \
	"local epoch = tonumber(string.match(ARGV[1], '^%d+'))\n"              \
	"local mine = string.match(ARGV[1], '^%d+ (.+)$') or ''\n"             \
	"if epoch < fence or (epoch == fence and holder ~= mine) then\n"       \
	"  return redis.error_reply('FENCED ' .. fence)\n"                     \
	"end\n"
#define FENCE_RAISE                                                            \
	"if epoch > fence then redis.call('SET', KEYS[1], ARGV[1]) end\n"

/*
 * The commit, atomic in Redis. KEYS: fence, offset, lobby stream, dead
 * letters. ARGV: epoch and token, the offset this batch follows ("" for none),
 * the new offset, the number of snapshots, then game_id/source_id/payload per
 * snapshot, then per dead letter its item count and items.
 *   - an epoch below the fence, or equal with another token, is refused
 *     (FENCED <fence>): a newer leader exists; an epoch above it raises it;
 *   - a saved offset other than the one the batch follows is refused
 *     (MOVED <saved>): a failover lost writes, or an operator moved it;
 *   - then the XADDs, and the offset SET last: an XADD that fails (a key
 *     of the wrong type) aborts the script before it, and the offset stays
 *     where it was (a script is not rolled back, so the XADDs before the
 *     failing one stay: the retry repeats them, which Lobby tolerates);
 *   - the offset never moves backwards: a batch applied again after
 *     PostgreSQL lost transactions (DESIGN §13, Redis ahead) publishes
 *     and leaves a newer offset as it is. Ids compare as numbers (digit
 *     strings by length, then by text: exact beyond 2^53).
 */
const char he_commit_script[] =
    "local function lt(a, b)\n"
    "  if #a ~= #b then return #a < #b end\n"
    "  return a < b\n"
    "end\n"
    "local function newer(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  if not am or not bm then return true end\n"
    "  if am ~= bm then return lt(bm, am) end\n"
    "  return lt(bs, as)\n"
    "end\n" FENCE_CHECK "local saved = redis.call('GET', KEYS[2]) or ''\n"
    "if saved ~= ARGV[2] then return redis.error_reply('MOVED ' .. saved) "
    "end\n" FENCE_RAISE "local i = 5\n"
    "for _ = 1, tonumber(ARGV[4]) do\n"
    "  redis.call('XADD', KEYS[3], '*', 'event_type', "
    "'runtime_snapshot_update', 'game_id', ARGV[i], 'source_id', "
    "ARGV[i + 1], 'payload', ARGV[i + 2])\n"
    "  i = i + 3\n"
    "end\n"
    "while i <= #ARGV do\n"
    "  local n = tonumber(ARGV[i])\n"
    "  redis.call('XADD', KEYS[4], '*', unpack(ARGV, i + 1, i + n))\n"
    "  i = i + n + 1\n"
    "end\n"
    "if newer(ARGV[3], saved) then redis.call('SET', KEYS[2], ARGV[3]) end\n"
    "return 'OK'\n";

/*
 * Taking over: raise the fence to our epoch and token (refused when it is
 * already higher, or as high with another token) and read the saved
 * offset, in one step. Any commit of an older
 * leader then either landed before (and its offset is what we read) or is
 * refused: the new leader starts exactly where the last commit ended.
 */
const char he_take_over_script[] =
    FENCE_CHECK FENCE_RAISE "return redis.call('GET', KEYS[2])\n";
