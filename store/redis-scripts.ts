/**
 * The Lua scripts of the Redis store: one per atomic operation (`openGeneration`, `append`,
 * `reset`, `delete`).
 * They repeat engine.ts rule for rule (the conformance suite holds them to it), so read the two
 * side by side: `applyOpen` ↔ OPEN_SCRIPT, `applyAppend` ↔ APPEND_SCRIPT, `Operation` ↔ PRELUDE.
 *
 * TypeScript string constants rather than .lua files, so the same code runs from the sources
 * (jest) and from dist/ (tsc copies no other files).
 *
 * Calling convention, shared by both scripts:
 *
 *   KEYS  1 log   2 meta   3 p0   4 p1   5 p2   6 seq   7 keys   8 ended   9 dedupe   10 seqruns
 *   ARGV  1 maxEvents  2 maxBytes  3 criticalFactor  4 sessionTtlMs  5 dedupeWindowMs
 *         6 publish command ('PUBLISH' standalone, 'SPUBLISH' cluster)  7 notice channel
 *   open    ARGV 8 generationId  9 takeover '1'|'0'  10 resumeOnly '1'|'0'  11 ts  12 tag
 *           13 resumeTag ('' for none)  14 secret digest ('' for none)
 *   reset   ARGV 8 ts
 *   delete  (no more)
 *   append  ARGV 8 header: msgpack array, one array per item (below)  9.. event bodies, one
 *           per append item, one per chunks item (its chunks' bodies end to end), in item
 *           order (Redis' cmsgpack
 *           cannot read msgpack `bin`, so bodies travel as arguments of their own and are
 *           stored untouched)
 *
 *     chunk   [1, generationId, epoch, seq, priority, ts, size, true]: a chunk dropped under
 *             pressure (§7.6), no body; stored chunks travel as chunks items
 *     end     [2, generationId, epoch, seq, status, ts, error | false, ifIdleSince | false]
 *     append  [3, key, priority, ts, size, ifHead | false]
 *     chunks  [4, generationId, epoch, firstSeq, [priority, ...], [ts, ...], [size, ...], [length, ...]]
 *             a run of n stored (not dropped) chunks at seqs firstSeq .. firstSeq + n - 1, their
 *             bodies in one argument, `length` bytes each: one item instead of n (unpacking and
 *             checking n tables was ~1 µs of Redis CPU per chunk) and one argument instead of n;
 *             answered like n chunk items
 *
 * Replies are one msgpack value (cmsgpack.pack), decoded by redis.ts:
 *
 *   open    ['resumed', epoch, nextSeq, startOffset, tag, takeover 1|0] | ['closed', endStatus, endOffset]
 *           | ['unknown'] | ['active', activeId, epoch] | ['full']
 *           | ['opened', epoch, startOffset, fencedId | false, fencedSeq, fencedEndOffset, trimmed]
 *   reset   ['reset', epoch, head, cleared, fencedId | false] | ['unknown']
 *   delete  ['deleted', epoch, head, fencedId | false] | ['unknown']; publishes 'deleted' on the
 *           notice channel instead of a head
 *   append  [head, results, trimmed]; one result per chunk (a chunks item has n), end and
 *           append item, in order; a result is [1, offset] ok | [2, offset] or
 *           [2, offset, endStatus] duplicate | [3, epoch] fenced | [4] closed
 *           | [5, expected] seq_gap | [6] full | [7] dropped | [8, lastWriteTs] busy | [9, head] conflict
 *   trimmed [[offset, priority, size], ...]
 *
 * Scripts are not rolled back when they fail half-way, so the append script checks every item
 * before its first write, and nothing after the first write can fail on bad input.
 */

/** Result codes of an append item, as the script returns them. */
export const RESULT = { ok: 1, duplicate: 2, fenced: 3, closed: 4, seqGap: 5, full: 6, dropped: 7, busy: 8, conflict: 9 } as const;

/** Item kinds in the append header. */
export const ITEM = { chunk: 1, end: 2, append: 3, chunks: 4 } as const;

/** Dedupe records (keys, ended generations) dropped per script call at most: bounded work. */
export const PRUNE_PER_CALL = 64;

const PRELUDE = `
local LOG, META, SEQ, KEYIDX, ENDED, DEDUPE, SEQRUNS = KEYS[1], KEYS[2], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local RETAIN = { [0] = KEYS[3], [1] = KEYS[4], [2] = KEYS[5] }
local MAX_EVENTS = tonumber(ARGV[1])
local MAX_BYTES = tonumber(ARGV[2])
local CRITICAL_FACTOR = tonumber(ARGV[3])
local TTL_MS = ARGV[4]
local DEDUPE_WINDOW_MS = tonumber(ARGV[5])
local PUBLISH, CHANNEL = ARGV[6], ARGV[7]
local CRITICAL = 3
local PRUNE_PER_CALL = ${PRUNE_PER_CALL}

-- Lua's tostring keeps 14 digits; integers are written exactly, anything else with 17.
local function num(n)
  if n == math.floor(n) and n >= -9007199254740992 and n <= 9007199254740992 then
    return string.format('%d', n)
  end
  return string.format('%.17g', n)
end

local raw = redis.call('HMGET', META, 'epoch', 'head', 'count', 'bytes', 'criticalCount', 'criticalBytes',
  'lastWriteTs', 'activeId', 'activeEpoch', 'activeLastSeq', 'activeStartOffset', 'activeLastWriteTs',
  'activeTag', 'activeSecret', 'floor0', 'floor1', 'floor2')
local meta = {
  epoch = tonumber(raw[1]) or 0, head = tonumber(raw[2]) or 0, count = tonumber(raw[3]) or 0,
  bytes = tonumber(raw[4]) or 0, criticalCount = tonumber(raw[5]) or 0,
  criticalBytes = tonumber(raw[6]) or 0, lastWriteTs = tonumber(raw[7]) or 0, active = nil,
  -- Per trimmable priority: the first offset still retained in the batch at the front of its
  -- retention list (0: none trimmed from it yet). Only that batch can be partly trimmed.
  floor = { [0] = tonumber(raw[15]) or 0, [1] = tonumber(raw[16]) or 0, [2] = tonumber(raw[17]) or 0 },
}
if raw[8] then
  meta.active = { id = raw[8], epoch = tonumber(raw[9]), lastSeq = tonumber(raw[10]),
    startOffset = tonumber(raw[11]), lastWriteTs = tonumber(raw[12]), tag = raw[13] or '', secret = raw[14] or '' }
end
-- stored: events written by this call (a notice is published only then);
-- dirty: meta changed (stored or trimmed), so meta is written and every TTL refreshed.
local stored, dirty = 0, false
local trimmed = {}
-- Retention entries this call adds, one per batch ({ firstOffset, { size, ... } }), are kept here
-- and written once at commit (one RPUSH per list) instead of one command per event. They are
-- newer than anything in the lists, so eviction takes from a list first and then from them.
local pendingRetain = { [0] = {}, [1] = {}, [2] = {} }
local pendingFirst = { [0] = 1, [1] = 1, [2] = 1 }
local listEmpty = { [0] = false, [1] = false, [2] = false }
-- The head of each retention list, parsed, while this call evicts from it.
local listFront = {}
-- The batch being built: consecutive events of one priority, one stream entry when written.
local batch = nil
-- Events per stream entry at most (XADD takes them as arguments; unpack has a stack limit).
local BATCH_EVENTS = 256
-- The seqs this call consumes, as runs { firstSeq, firstOffset, count }: consecutive seqs at
-- consecutive offsets, or consecutive seqs all dropped under pressure (firstOffset DROPPED_SEQ,
-- 0, never an offset). commit() writes one SEQRUNS member per run, not one field per seq.
local pendingRuns = {}
local DROPPED_SEQ = 0

local function recordSeq(seq, offset)
  local last = pendingRuns[#pendingRuns]
  if last and seq == last[1] + last[3] then
    if (offset == DROPPED_SEQ and last[2] == DROPPED_SEQ) or (offset ~= DROPPED_SEQ and last[2] ~= DROPPED_SEQ and offset == last[2] + last[3]) then
      last[3] = last[3] + 1
      return
    end
  end
  pendingRuns[#pendingRuns + 1] = { seq, offset, 1 }
end

-- The offset of \`seq\` if \`run\` holds it (DROPPED_SEQ for a dropped one), else nil.
local function runOffset(run, seq)
  if seq < run[1] or seq >= run[1] + run[3] then return nil end
  if run[2] == DROPPED_SEQ then return DROPPED_SEQ end
  return run[2] + (seq - run[1])
end

-- Where a consumed seq of the active generation went: this call's runs, the stored runs (the
-- last one starting at or before it), or a one-field-per-seq SEQ hash written by a spool from
-- before seq runs (read until its generation ends). nil: not consumed.
local function seqOffset(seq)
  for i = #pendingRuns, 1, -1 do
    local offset = runOffset(pendingRuns[i], seq)
    if offset then return offset end
  end
  local found = redis.call('ZREVRANGEBYSCORE', SEQRUNS, num(seq), '-inf', 'LIMIT', 0, 1)[1]
  if found then
    local a = string.find(found, ':', 1, true)
    local b = string.find(found, ':', a + 1, true)
    local offset = runOffset({ tonumber(string.sub(found, 1, a - 1)), tonumber(string.sub(found, a + 1, b - 1)), tonumber(string.sub(found, b + 1)) }, seq)
    if offset then return offset end
  end
  local indexed = redis.call('HGET', SEQ, num(seq))
  return indexed and tonumber(indexed)
end
local BULK = 256

-- Forgets keys and ended generations whose dedupe window has passed, oldest first, at most
-- PRUNE_PER_CALL per call. Pruning needs no TTL refresh: it only removes.
local function prune(now)
  local due = redis.call('ZRANGEBYSCORE', DEDUPE, '-inf', '(' .. num(now - DEDUPE_WINDOW_MS), 'LIMIT', 0, PRUNE_PER_CALL)
  if #due == 0 then return end
  for i = 1, #due do
    local member = due[i]
    if string.sub(member, 1, 1) == 'k' then
      redis.call('HDEL', KEYIDX, string.sub(member, 3))
    else
      redis.call('HDEL', ENDED, string.sub(member, 3))
    end
  end
  redis.call('ZREM', DEDUPE, unpack(due))
end

local function isFull()
  return meta.criticalCount >= MAX_EVENTS * CRITICAL_FACTOR or meta.criticalBytes >= MAX_BYTES * CRITICAL_FACTOR
end

-- Writes the batch being built as one stream entry: id <first offset>-0, one field 'e' per event.
local function writeBatch()
  if batch == nil then return end
  redis.call('XADD', LOG, num(batch.first) .. '-0', unpack(batch.args))
  batch = nil
end

-- The only place offsets are made. Consecutive events of one priority stored by one call share a
-- stream entry (a batch); the entry id is the first one's offset, the rest follow in order.
local function store(body, priority, size, ts)
  local offset = meta.head + 1
  if batch ~= nil and (batch.priority ~= priority or #batch.args >= 2 * BATCH_EVENTS) then writeBatch() end
  if batch == nil then
    batch = { first = offset, priority = priority, args = { 'e', body } }
    if priority < CRITICAL then
      local pending = pendingRetain[priority]
      pending[#pending + 1] = { offset, { size } }
    end
  else
    local args = batch.args
    args[#args + 1] = 'e'
    args[#args + 1] = body
    if priority < CRITICAL then
      local sizes = pendingRetain[priority][#pendingRetain[priority]][2]
      sizes[#sizes + 1] = size
    end
  end
  meta.head = offset
  meta.count = meta.count + 1
  meta.bytes = meta.bytes + size
  if priority == CRITICAL then
    meta.criticalCount = meta.criticalCount + 1
    meta.criticalBytes = meta.criticalBytes + size
  end
  -- Max, not assignment: a session's clock never moves backwards.
  if ts > meta.lastWriteTs then meta.lastWriteTs = ts end
  stored = stored + 1
  dirty = true
  return offset
end

-- Appends gen.end, forgets the seq index, remembers how the generation ended.
local function endGeneration(seq, status, err, ts)
  local id = meta.active.id
  local event = { type = 'gen.end', generationId = id, seq = seq, status = status, priority = CRITICAL, ts = ts }
  if err then event.error = err end
  local offset = store(cmsgpack.pack(event), CRITICAL, 0, ts)
  redis.call('DEL', SEQ, SEQRUNS)
  pendingRuns = {}
  redis.call('HSET', ENDED, id, num(offset) .. ':' .. status)
  redis.call('ZADD', DEDUPE, num(ts), 'x:' .. id)
  meta.active = nil
  return offset
end

-- A retention list entry: "firstOffset:size,size,..." (one batch; a batch of one is the
-- "offset:size" of spool before batches) as { firstOffset, { size, ... } }.
local function parseRetained(entry)
  local sep = string.find(entry, ':', 1, true)
  local sizes = {}
  for size in string.gmatch(string.sub(entry, sep + 1), '[^,]+') do sizes[#sizes + 1] = tonumber(size) end
  return { tonumber(string.sub(entry, 1, sep - 1)), sizes }
end

-- The front batch of a priority's retention index (the list, then this call's entries), or nil.
local function frontBatch(priority)
  if not listEmpty[priority] then
    if listFront[priority] == nil then
      local entry = redis.call('LINDEX', RETAIN[priority], 0)
      if entry then listFront[priority] = parseRetained(entry) else listEmpty[priority] = true end
    end
    if listFront[priority] ~= nil then return listFront[priority] end
  end
  if pendingFirst[priority] <= #pendingRetain[priority] then return pendingRetain[priority][pendingFirst[priority]] end
  return nil
end

-- The front batch is gone: off the list (or this call's entries), its stream entry deleted.
local function dropFrontBatch(priority, first)
  if listFront[priority] ~= nil then
    redis.call('LPOP', RETAIN[priority])
    listFront[priority] = nil
  else
    pendingFirst[priority] = pendingFirst[priority] + 1
  end
  redis.call('XDEL', LOG, num(first) .. '-0')
end

-- The oldest event of the lowest priority present: the next one of the front batch of the
-- lowest non-empty retention list (priority's floor says how far that batch is trimmed); no
-- event read. The batch's stream entry goes with its last event.
local function evictOldest()
  for priority = 0, 2 do
    local front = frontBatch(priority)
    if front ~= nil then
      local first, sizes = front[1], front[2]
      local offset = meta.floor[priority]
      if offset < first then offset = first end
      local index = offset - first + 1
      local size = sizes[index]
      if index >= #sizes then
        dropFrontBatch(priority, first)
        meta.floor[priority] = 0
      else
        meta.floor[priority] = offset + 1
      end
      return offset, priority, size
    end
  end
  return nil
end

local function retain()
  writeBatch()
  while (meta.count > MAX_EVENTS or meta.bytes > MAX_BYTES) and meta.count > meta.criticalCount do
    local offset, priority, size = evictOldest()
    -- The counters say a trimmable event exists but the index has none: stop rather than spin.
    if offset == nil then break end
    meta.count = meta.count - 1
    meta.bytes = meta.bytes - size
    trimmed[#trimmed + 1] = { offset, priority, size }
    dirty = true
  end
end

-- Writes args[from..] with one command per BULK items of \`per\` arguments (unpack has a stack limit).
local function bulk(command, key, args, from, per)
  local i = from
  while i <= #args do
    local last = math.min(#args, i + BULK * per - 1)
    redis.call(command, key, unpack(args, i, last))
    i = last + 1
  end
end

-- Writes the pending index entries and meta, and refreshes the TTL of every key, only when
-- something changed, so refused writes never create or extend a session; then publishes the
-- change notice.
local function commit()
  writeBatch()
  if not dirty then return end
  for priority = 0, 2 do
    local entries = {}
    local pending = pendingRetain[priority]
    for i = pendingFirst[priority], #pending do
      local sizes = {}
      for j = 1, #pending[i][2] do sizes[j] = num(pending[i][2][j]) end
      entries[#entries + 1] = num(pending[i][1]) .. ':' .. table.concat(sizes, ',')
    end
    bulk('RPUSH', RETAIN[priority], entries, 1, 1)
  end
  local runs = {}
  for i = 1, #pendingRuns do
    local run = pendingRuns[i]
    local first = num(run[1])
    runs[#runs + 1] = first
    runs[#runs + 1] = first .. ':' .. num(run[2]) .. ':' .. num(run[3])
  end
  bulk('ZADD', SEQRUNS, runs, 1, 2)
  local fields = { 'epoch', num(meta.epoch), 'head', num(meta.head), 'count', num(meta.count),
    'bytes', num(meta.bytes), 'criticalCount', num(meta.criticalCount),
    'criticalBytes', num(meta.criticalBytes), 'lastWriteTs', num(meta.lastWriteTs),
    'floor0', num(meta.floor[0]), 'floor1', num(meta.floor[1]), 'floor2', num(meta.floor[2]) }
  local a = meta.active
  if a then
    local more = { 'activeId', a.id, 'activeEpoch', num(a.epoch), 'activeLastSeq', num(a.lastSeq),
      'activeStartOffset', num(a.startOffset), 'activeLastWriteTs', num(a.lastWriteTs),
      'activeTag', a.tag, 'activeSecret', a.secret }
    for i = 1, #more do fields[#fields + 1] = more[i] end
    redis.call('HSET', META, unpack(fields))
  else
    redis.call('HSET', META, unpack(fields))
    redis.call('HDEL', META, 'activeId', 'activeEpoch', 'activeLastSeq', 'activeStartOffset', 'activeLastWriteTs',
      'activeTag', 'activeSecret')
  end
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], TTL_MS) end
  if stored > 0 then redis.call(PUBLISH, CHANNEL, num(meta.head)) end
end
`;

/** `SessionStore.reset`, as engine.ts `applyReset`. */
export const RESET_SCRIPT = `${PRELUDE}
local ts = tonumber(ARGV[8])
if meta.head == 0 then return cmsgpack.pack({ 'unknown' }) end
local cleared = meta.head
meta.epoch = meta.epoch + 1
local fenced = false
if meta.active then
  local id = meta.active.id
  redis.call('DEL', SEQ, SEQRUNS)
  pendingRuns = {}
  redis.call('HSET', ENDED, id, num(cleared + 1) .. ':fenced')
  redis.call('ZADD', DEDUPE, num(ts), 'x:' .. id)
  fenced = id
  meta.active = nil
end
-- The log and its retention index go whole; keys and ended generations stay for their window.
redis.call('DEL', LOG, RETAIN[0], RETAIN[1], RETAIN[2])
meta.count, meta.bytes, meta.criticalCount, meta.criticalBytes = 0, 0, 0, 0
meta.floor = { [0] = 0, [1] = 0, [2] = 0 }
local head = store(cmsgpack.pack({ type = 'session.reset', priority = CRITICAL, ts = ts }), CRITICAL, 0, ts)
commit()
return cmsgpack.pack({ 'reset', meta.epoch, head, cleared, fenced })
`;

/** `SessionStore.delete`: every key of the session, in one step. */
export const DELETE_SCRIPT = `${PRELUDE}
if meta.head == 0 then return cmsgpack.pack({ 'unknown' }) end
redis.call('DEL', unpack(KEYS))
redis.call(PUBLISH, CHANNEL, 'deleted')
return cmsgpack.pack({ 'deleted', meta.epoch, meta.head, meta.active and meta.active.id or false })
`;

/** `SessionStore.openGeneration`, as engine.ts `applyOpen`. */
export const OPEN_SCRIPT = `${PRELUDE}
local generationId, takeover, resumeOnly, ts = ARGV[8], ARGV[9] == '1', ARGV[10] == '1', tonumber(ARGV[11])
local tag, resumeTag, secret = ARGV[12], ARGV[13], ARGV[14]
prune(ts)
local current = meta.active
if current and current.id == generationId then
  -- Proof of being its producer: the current token's tag, or the first open's secret (never '').
  if (resumeTag ~= '' and resumeTag == current.tag) or (secret ~= '' and secret == current.secret) then
    -- A re-open is activity (§7.8): raise the active generation's lastWriteTs, one HSET and only
    -- when it rises. No commit(): nothing was stored, so no TTL is refreshed and no notice sent;
    -- meta exists (an active generation implies it), so HSET keeps its TTL and creates nothing.
    if ts > current.lastWriteTs then redis.call('HSET', META, 'activeLastWriteTs', num(ts)) end
    return cmsgpack.pack({ 'resumed', current.epoch, current.lastSeq + 1, current.startOffset, current.tag, 0 })
  end
  if not takeover or resumeOnly then return cmsgpack.pack({ 'active', current.id, meta.epoch }) end
  -- Takeover of the active generation's writer: new epoch and tag, same generation, no event.
  meta.epoch = meta.epoch + 1
  current.epoch = meta.epoch
  current.tag = tag
  current.secret = secret
  if ts > current.lastWriteTs then current.lastWriteTs = ts end
  dirty = true
  commit()
  return cmsgpack.pack({ 'resumed', current.epoch, current.lastSeq + 1, current.startOffset, current.tag, 1 })
end
local ended = redis.call('HGET', ENDED, generationId)
if ended then
  local sep = string.find(ended, ':', 1, true)
  return cmsgpack.pack({ 'closed', string.sub(ended, sep + 1), tonumber(string.sub(ended, 1, sep - 1)) })
end
if resumeOnly then return cmsgpack.pack({ 'unknown' }) end
if current and not takeover then return cmsgpack.pack({ 'active', current.id, meta.epoch }) end
if isFull() then return cmsgpack.pack({ 'full' }) end

meta.epoch = meta.epoch + 1
local fenced, fencedSeq, fencedOffset = false, 0, 0
if current then
  -- The displaced generation's terminal event precedes the new gen.start (G6).
  fencedSeq = current.lastSeq + 1
  fencedOffset = endGeneration(fencedSeq, 'fenced', nil, ts)
  fenced = current.id
end
local startOffset = store(cmsgpack.pack({ type = 'gen.start', generationId = generationId, priority = CRITICAL, ts = ts }), CRITICAL, 0, ts)
meta.active = { id = generationId, epoch = meta.epoch, lastSeq = -1, startOffset = startOffset, lastWriteTs = ts, tag = tag, secret = secret }
retain()
commit()
return cmsgpack.pack({ 'opened', meta.epoch, startOffset, fenced, fencedSeq, fencedOffset, trimmed })
`;

/**
 * `SessionStore.read`'s look at the log: ARGV 8 the first offset wanted, 9 how many events. Returns
 * (RESP, not msgpack: bodies stay bytes) { head, floor0, floor1, floor2 }, the head of each
 * retention list (false when empty), the stream entries from the one holding ARGV 8 on, as
 * XRANGE gives them, read in pages sized by the entries seen until they hold ARGV 9 events or the log ends, and 1
 * when it ended. The caller drops what trimming took (read, in redis.ts); the script decodes
 * nothing, and a batch counts as the events it holds, so a read moves what it asks for.
 */
export const READ_SCRIPT = `
local LOG, META = KEYS[1], KEYS[2]
local start, limit = tonumber(ARGV[8]), tonumber(ARGV[9])
-- Entries per XRANGE at most; each asks for about as many entries as the events still wanted
-- need at the size of the last entry seen, so a read moves at most about one entry more than it asked.
local PAGE = 64
local meta = redis.call('HMGET', META, 'head', 'floor0', 'floor1', 'floor2')
local fronts = { redis.call('LINDEX', KEYS[3], 0), redis.call('LINDEX', KEYS[4], 0), redis.call('LINDEX', KEYS[5], 0) }
local entries = redis.call('XREVRANGE', LOG, string.format('%d', start) .. '-0', '-', 'COUNT', 1)
local events, perEntry = 0, 1
if entries[1] then
  local first = tonumber(string.match(entries[1][1], '^(%d+)'))
  perEntry = #entries[1][2] / 2
  events = first + perEntry - start
  if events < 0 then events = 0 end
end
local cursor = '(' .. string.format('%d', start) .. '-0'
local ended = 0
while events < limit do
  local want = math.ceil((limit - events) / perEntry)
  if want > PAGE then want = PAGE end
  local page = redis.call('XRANGE', LOG, cursor, '+', 'COUNT', want)
  for i = 1, #page do
    entries[#entries + 1] = page[i]
    perEntry = #page[i][2] / 2
    events = events + perEntry
  end
  if #page < want then
    ended = 1
    break
  end
  cursor = '(' .. page[#page][1]
end
return { meta, fronts, entries, ended }
`;

/** `SessionStore.append`, as engine.ts `applyAppend`: items in order, then retention. */
export const APPEND_SCRIPT = `${PRELUDE}
local items = cmsgpack.unpack(ARGV[8])

-- Check everything before the first write (a failing script is not rolled back).
local function isInt(v) return type(v) == 'number' and v == math.floor(v) end
local function bad(i, what) return redis.error_reply('ERR spool append item ' .. i .. ': ' .. what) end
local bodies, now = 0, nil
-- The chunks items' body arguments and the bytes their lengths add up to, checked once counted.
local blobs = {}
for i = 1, #items do
  local item = items[i]
  local op = type(item) == 'table' and item[1]
  local ts
  if op == ${ITEM.chunk} then
    if type(item[2]) ~= 'string' or not isInt(item[3]) or not isInt(item[4]) then return bad(i, 'bad chunk') end
    if not isInt(item[5]) or item[5] < 0 or item[5] > 3 or type(item[6]) ~= 'number' or type(item[7]) ~= 'number' or item[7] < 0 then return bad(i, 'bad chunk') end
    -- A stored chunk travels in a chunks item; a chunk item is one dropped under pressure.
    if item[8] ~= true then return bad(i, 'bad chunk drop (stored chunks travel as chunks items)') end
    ts = item[6]
  elseif op == ${ITEM.end} then
    if type(item[2]) ~= 'string' or not isInt(item[3]) or not isInt(item[4]) or type(item[5]) ~= 'string' or type(item[6]) ~= 'number' then return bad(i, 'bad end') end
    if item[7] and type(item[7]) ~= 'string' then return bad(i, 'bad end error') end
    if item[8] and type(item[8]) ~= 'number' then return bad(i, 'bad end ifIdleSince') end
    ts = item[6]
  elseif op == ${ITEM.append} then
    if type(item[2]) ~= 'string' or not isInt(item[3]) or item[3] < 0 or item[3] > 3 or type(item[4]) ~= 'number' or type(item[5]) ~= 'number' or item[5] < 0 then return bad(i, 'bad append') end
    if item[6] and not isInt(item[6]) then return bad(i, 'bad append ifHead') end
    ts, bodies = item[4], bodies + 1
  elseif op == ${ITEM.chunks} then
    if type(item[2]) ~= 'string' or not isInt(item[3]) or not isInt(item[4]) then return bad(i, 'bad chunks') end
    local priorities, tss, sizes, lengths = item[5], item[6], item[7], item[8]
    if type(priorities) ~= 'table' or type(tss) ~= 'table' or type(sizes) ~= 'table' or type(lengths) ~= 'table' then return bad(i, 'bad chunks') end
    local n = #sizes
    if n < 1 or #priorities ~= n or #tss ~= n or #lengths ~= n then return bad(i, 'bad chunks lengths') end
    local total = 0
    for j = 1, n do
      local priority, t, size, length = priorities[j], tss[j], sizes[j], lengths[j]
      if not isInt(priority) or priority < 0 or priority > 3 or type(t) ~= 'number' or type(size) ~= 'number' or size < 0 then return bad(i, 'bad chunks') end
      if not isInt(length) or length < 1 then return bad(i, 'bad chunks body length') end
      total = total + length
      if ts == nil or t > ts then ts = t end
    end
    bodies = bodies + 1
    blobs[#blobs + 1] = { i, 8 + bodies, total }
  else
    return bad(i, 'unknown op')
  end
  if now == nil or ts > now then now = ts end
end
if #ARGV ~= 8 + bodies then return redis.error_reply('ERR spool append: ' .. bodies .. ' bodies expected, ' .. (#ARGV - 8) .. ' given') end
for b = 1, #blobs do
  local blob = blobs[b]
  if string.len(ARGV[blob[2]]) ~= blob[3] then return bad(blob[1], 'chunks body lengths add up to ' .. blob[3] .. ' bytes, its argument has ' .. string.len(ARGV[blob[2]])) end
end

if now ~= nil then prune(now) end

local function chunk(generationId, epoch, seq, priority, ts, size, drop, body)
  if epoch < meta.epoch then return { ${RESULT.fenced}, meta.epoch } end
  local a = meta.active
  if not a or a.id ~= generationId or a.epoch ~= epoch then return { ${RESULT.closed} } end
  -- Duplicates are answered before the hard cap (G2).
  if seq <= a.lastSeq then
    local offset = seqOffset(seq)
    if not offset then return { ${RESULT.seqGap}, a.lastSeq + 1 } end
    -- A dropped seq stays dropped, whether the retransmission is marked drop or not (§7.6).
    if offset == DROPPED_SEQ then return { ${RESULT.dropped} } end
    return { ${RESULT.duplicate}, offset }
  end
  if drop then
    -- Never full (it stores nothing). The consumed seq is state: commit() writes it and meta and
    -- refreshes the TTLs (as engine.ts moves the session's lastWriteTs); no event, no notice.
    if seq > a.lastSeq + 1 then return { ${RESULT.seqGap}, a.lastSeq + 1 } end
    recordSeq(seq, DROPPED_SEQ)
    a.lastSeq = seq
    if ts > a.lastWriteTs then a.lastWriteTs = ts end
    if ts > meta.lastWriteTs then meta.lastWriteTs = ts end
    dirty = true
    return { ${RESULT.dropped} }
  end
  if isFull() then return { ${RESULT.full} } end
  if seq > a.lastSeq + 1 then return { ${RESULT.seqGap}, a.lastSeq + 1 } end
  local offset = store(body, priority, size, ts)
  recordSeq(seq, offset)
  a.lastSeq = seq
  if ts > a.lastWriteTs then a.lastWriteTs = ts end
  return { ${RESULT.ok}, offset }
end

local function finish(item)
  local generationId, epoch, seq, status, ts, err, ifIdleSince = item[2], item[3], item[4], item[5], item[6], item[7], item[8]
  -- The ended record comes before the epoch: a retried finish learns how it ended (G4 holds:
  -- nothing is written).
  local ended = redis.call('HGET', ENDED, generationId)
  if ended then
    local sep = string.find(ended, ':', 1, true)
    return { ${RESULT.duplicate}, tonumber(string.sub(ended, 1, sep - 1)), string.sub(ended, sep + 1) }
  end
  if epoch < meta.epoch then return { ${RESULT.fenced}, meta.epoch } end
  local a = meta.active
  if not a or a.id ~= generationId or a.epoch ~= epoch then return { ${RESULT.closed} } end
  -- The idle timeout's end (§7.8): activity after the caller last looked wins.
  if ifIdleSince and a.lastWriteTs > ifIdleSince then return { ${RESULT.busy}, a.lastWriteTs } end
  if seq ~= a.lastSeq + 1 then return { ${RESULT.seqGap}, a.lastSeq + 1 } end
  -- Never refused for full: every generation gets its terminal event (G6).
  return { ${RESULT.ok}, endGeneration(seq, status, err or nil, ts) }
end

-- Whether every conditional item so far was stored by this call (they hold together).
local held = true

local function keyed(item, body)
  local key, priority, ts, size, ifHead = item[2], item[3], item[4], item[5], item[6]
  local seen = redis.call('HGET', KEYIDX, key)
  if seen then return { ${RESULT.duplicate}, tonumber(seen) } end
  -- Compare-and-append: the caller checked its writes against the session as of head ifHead.
  if ifHead and (not held or meta.head ~= ifHead) then return { ${RESULT.conflict}, meta.head } end
  if isFull() then return { ${RESULT.full} } end
  local offset = store(body, priority, size, ts)
  redis.call('HSET', KEYIDX, key, num(offset))
  redis.call('ZADD', DEDUPE, num(ts), 'k:' .. key)
  return { ${RESULT.ok}, offset }
end

local results = {}
local nextBody = 9
for i = 1, #items do
  local item = items[i]
  local op = item[1]
  if op == ${ITEM.chunks} then
    local generationId, epoch, firstSeq, priorities, tss, sizes, lengths = item[2], item[3], item[4], item[5], item[6], item[7], item[8]
    local blob, at = ARGV[nextBody], 1
    nextBody = nextBody + 1
    for j = 1, #sizes do
      local length = lengths[j]
      results[#results + 1] = chunk(generationId, epoch, firstSeq + j - 1, priorities[j], tss[j], sizes[j], false, string.sub(blob, at, at + length - 1))
      at = at + length
    end
  elseif op == ${ITEM.chunk} then
    results[#results + 1] = chunk(item[2], item[3], item[4], item[5], item[6], item[7], true, nil)
  elseif op == ${ITEM.end} then
    results[#results + 1] = finish(item)
  else
    local result = keyed(item, ARGV[nextBody])
    results[#results + 1] = result
    nextBody = nextBody + 1
    if item[6] and result[1] ~= ${RESULT.ok} then held = false end
  end
end
retain()
commit()
return cmsgpack.pack({ meta.head, results, trimmed })
`;
