"""Taking a job: one server-side step that pops the first job of a worker's queues and
records it as the worker's in-flight job, so that no job is ever only in a process's memory
or on the wire (Ruby Resque LPOPs, then SETs ``worker:<id>`` in a second round trip).

The script moves the payload's bytes untouched: it never decodes and re-encodes them, as
Redis's Lua JSON library would round numbers and reorder keys. ``worker:<id>`` gets exactly
the bytes Resque's ``Worker#working_on`` writes, ``{"queue":..,"run_at":..,"payload":..}``,
with the payload spliced in. A payload that is not a JSON object (or that Ruby could not
parse: invalid UTF-8, deeper than ``wire.MAX_SPLICE_DEPTH``) gets a valid placeholder
there instead, and its bytes go to a key of ours, ``<ns>:worker-raw:<id>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from resque_pool.resque import packed, records, wire
from resque_pool.resque.connection import get_redis, key, namespace, registered_script
from resque_pool.resque.jobs import Job, class_name_of

logger = logging.getLogger(__name__)

# The placeholder's class: what Ruby's resque-web shows for a job whose payload is garbage.
PLACEHOLDER_CLASS = "resque_pool.errors.MalformedPayload"

# KEYS: pause-all-workers, worker:<id>, worker-raw:<id>, queue:<q1>, queue:<q2>, ...
# ARGV: run_at, max depth, max integer digits, placeholder payload, then each queue's name
# as a JSON string.
# Returns nil (nothing queued), 0 (paused), {queue index, raw payload, 1 if spliced}, or
# {0, record, raw payload, 1 if our raw key holds it} for a job already recorded.
_LUA = r"""
local find, byte, sub = string.find, string.byte, string.sub

local function utf8_ok(s)
  local i = 1
  while true do
    local j = find(s, '[\128-\255]', i)
    if not j then return true end
    local c, need = byte(s, j), 0
    if c >= 194 and c <= 223 then need = 1
    elseif c >= 224 and c <= 239 then need = 2
    elseif c >= 240 and c <= 244 then need = 3
    else return false end
    for k = 1, need do
      local d = byte(s, j + k)
      if not d or d < 128 or d > 191 then return false end
    end
    local d = byte(s, j + 1)
    if (c == 224 and d < 160) or (c == 237 and d >= 160)
      or (c == 240 and d < 144) or (c == 244 and d >= 144) then
      return false
    end
    i = j + need + 1
  end
end

local function scan_string(s, pos)  -- s[pos] is '"'; returns the position after it
  local i = pos + 1
  while true do
    local j = find(s, '["\\\1-\31]', i)
    if not j then return nil end
    local c = byte(s, j)
    if c == 34 then return j + 1 end
    if c ~= 92 then return nil end
    local e = byte(s, j + 1)
    if e == 117 then
      if not find(s, '^%x%x%x%x', j + 2) then return nil end
      i = j + 6
    elseif e and find('"\\/bfnrt', string.char(e), 1, true) then
      i = j + 2
    else
      return nil
    end
  end
end

local function scan_number(s, i, max_int_digits)
  if byte(s, i) == 45 then i = i + 1 end
  local c, start, integer = byte(s, i), i, true
  if c == 48 then
    i = i + 1
  elseif c and c >= 49 and c <= 57 then
    local _, e = find(s, '^%d+', i); i = e + 1
  else
    return nil
  end
  local digits = i - start
  if byte(s, i) == 46 then
    local _, e = find(s, '^%d+', i + 1); if not e then return nil end; i = e + 1
    integer = false
  end
  c = byte(s, i)
  if c == 101 or c == 69 then
    i = i + 1
    c = byte(s, i)
    if c == 43 or c == 45 then i = i + 1 end
    local _, e = find(s, '^%d+', i); if not e then return nil end; i = e + 1
    integer = false
  end
  -- Python refuses to convert longer integers: such a record could not be read back.
  if integer and digits > max_int_digits then return nil end
  return i
end

-- Strict JSON syntax (RFC 8259) of an object, iteratively, without building anything.
local function json_object_ok(s, max_depth, max_int_digits)
  if find(s, '\0', 1, true) or not utf8_ok(s) then return false end
  local pos = find(s, '[^ \t\n\r]')
  if not pos or byte(s, pos) ~= 123 then return false end
  local stack, depth, state = {}, 0, 'value'
  while true do
    pos = find(s, '[^ \t\n\r]', pos)
    if not pos then return state == 'after' and depth == 0 end
    local c = byte(s, pos)
    if state == 'first_key' and c == 125 or state == 'first_value' and c == 93 then
      depth = depth - 1; pos = pos + 1; state = 'after'
    elseif state == 'key' or state == 'first_key' then
      if c ~= 34 then return false end
      pos = scan_string(s, pos); if not pos then return false end
      pos = find(s, '[^ \t\n\r]', pos)
      if not pos or byte(s, pos) ~= 58 then return false end
      pos = pos + 1; state = 'value'
    elseif state == 'value' or state == 'first_value' then
      if c == 123 or c == 91 then
        depth = depth + 1
        if depth > max_depth then return false end
        stack[depth] = c; pos = pos + 1
        state = (c == 123) and 'first_key' or 'first_value'
      else
        if c == 34 then pos = scan_string(s, pos)
        elseif c == 45 or (c >= 48 and c <= 57) then pos = scan_number(s, pos, max_int_digits)
        elseif sub(s, pos, pos + 3) == 'true' or sub(s, pos, pos + 3) == 'null' then pos = pos + 4
        elseif sub(s, pos, pos + 4) == 'false' then pos = pos + 5
        else return false end
        if not pos then return false end
        state = 'after'
      end
    else -- after a value
      if depth == 0 then return false end
      local top = stack[depth]
      if c == 44 then
        state = (top == 123) and 'key' or 'value'
      elseif (c == 93 and top == 91) or (c == 125 and top == 123) then
        depth = depth - 1
      else
        return false
      end
      pos = pos + 1
    end
  end
end

-- A job already recorded for this worker was reserved by a call whose reply never came
-- back (a connection reset, a client time-out after Redis ran the script): hand it out
-- again rather than overwrite its record with another job.
local current = redis.call('GET', KEYS[2])
if current then
  local stored = redis.call('GET', KEYS[3])
  if stored then return {0, current, stored, 1} end
  return {0, current, '', 0}
end
local paused = redis.call('GET', KEYS[1])
if paused then
  paused = string.lower(string.match(paused, '^%s*(.-)%s*$'))
  if paused == 'true' then return 0 end
end
for i = 4, #KEYS do
  local raw = redis.call('LPOP', KEYS[i])
  if raw then
    local queue = ARGV[i + 1]
    local head = '{"queue":' .. queue .. ',"run_at":"' .. ARGV[1] .. '","payload":'
    if json_object_ok(raw, tonumber(ARGV[2]), tonumber(ARGV[3])) then
      redis.call('SET', KEYS[2], head .. raw .. '}')
      return {i - 3, raw, 1}
    end
    redis.call('SET', KEYS[3], raw)
    redis.call('SET', KEYS[2], head .. ARGV[4] .. '}')
    return {i - 3, raw, 0}
  end
end
return nil
"""


def raw_key(worker_id: str) -> str:
    """Our key holding the bytes of an in-flight payload that is not a JSON object."""
    return key("worker-raw", worker_id)


_PLACEHOLDER = wire.dumps({"class": PLACEHOLDER_CLASS, "args": []})


def placeholder_payload() -> str:
    return _PLACEHOLDER


@dataclass(frozen=True)
class Reservation:
    queue: str
    raw: str
    spliced: bool  # worker:<id> holds the payload's own bytes (else a placeholder)


PAUSED = "paused"


def reserve(worker_id: str, queues: list[str]) -> Reservation | str | None:
    """Pop the first job of ``queues`` (in order) and record it as ``worker_id``'s in-flight
    job, atomically; ``PAUSED`` when ``pause-all-workers`` is set, None when every queue is
    empty."""
    shape = (namespace(), worker_id, tuple(queues))
    keys, fixed_args = _script_inputs(*shape)
    client = get_redis()
    script = registered_script(_LUA)
    run_at = wire.run_at()

    def command() -> list[tuple[Any, ...]]:
        return [("EVALSHA", script.sha, len(keys), *keys, run_at, *fixed_args)]

    try:
        # The same EVALSHA the script object sends, packed once per run_at second.
        replies = packed.send(client, (script.sha, *shape, run_at), command)
    except NoScriptError:  # a restart or a failover emptied the script cache: load it
        replies = None
    result = (
        replies[0]
        if replies is not None
        else script(keys=keys, args=[run_at, *fixed_args], client=client)
    )
    if result is None:
        return None
    if result == 0:
        return PAUSED
    if int(result[0]) == 0:
        return _resumed(worker_id, *result[1:])
    index, raw, spliced = result
    return Reservation(queue=queues[int(index) - 1], raw=raw, spliced=bool(spliced))


# (namespace, worker id, queues) -> the script's keys and its arguments after run_at: the
# same for every reservation of a worker with a static queue list.
_inputs: dict[tuple[str, str, tuple[str, ...]], tuple[list[str], list[str | int]]] = {}
_MAX_INPUTS = 64  # a dynamic list whose queues keep changing must not grow it for ever


def _script_inputs(
    namespace: str, worker_id: str, queues: tuple[str, ...]
) -> tuple[list[str], list[str | int]]:
    inputs = _inputs.get((namespace, worker_id, queues))  # a new namespace: new keys
    if inputs is None:
        keys = [key(records.PAUSE_ALL_WORKERS), key("worker", worker_id), raw_key(worker_id)]
        keys += [key("queue", queue) for queue in queues]
        args: list[str | int] = [wire.MAX_SPLICE_DEPTH, wire.MAX_INT_DIGITS, _PLACEHOLDER]
        args += [wire.dumps(queue) for queue in queues]
        if len(_inputs) >= _MAX_INPUTS:
            _inputs.clear()
        inputs = _inputs[(namespace, worker_id, queues)] = (keys, args)
    return inputs


def _resumed(worker_id: str, record: str, stored: str, has_stored: int) -> Reservation:
    in_flight = parse_record(record, stored if has_stored else None)
    logger.warning(
        "Worker %s resumes the job recorded for it, whose reservation reply was lost: %s",
        worker_id,
        in_flight.raw[:200].encode("utf-8", "backslashreplace").decode("utf-8"),
    )
    return Reservation(queue=in_flight.queue, raw=in_flight.raw, spliced=not has_stored)


# The in-flight record read back: the writer above and every reader (the loss policy in
# in_flight.py, pruning, the worker resuming a lost reply) share one idea of its format.
@dataclass(frozen=True)
class InFlight:
    """What ``worker:<id>`` records: the queue, the payload's raw text, the record's text."""

    queue: str
    raw: str
    record: str

    @property
    def job(self) -> Job:
        return Job.from_raw(self.queue, self.raw)

    @property
    def class_name(self) -> str | None:
        return class_name_of(self.job.payload)


def read_in_flight(worker_id: str) -> InFlight | None:
    """The job ``worker:<id>`` records, with the payload's own bytes (from our raw key when
    the record holds a placeholder, else cut out of the record); None when idle."""
    record, stored_raw = get_redis().mget(key("worker", worker_id), raw_key(worker_id))
    if not record:
        return None
    return parse_record(record, stored_raw)


def parse_record(record: str, stored_raw: str | None = None) -> InFlight:
    data, _ok = records.json_or_text(record)
    if not isinstance(data, dict):  # not written by a Resque worker: keep all of it
        return InFlight(queue="", raw=stored_raw or record, record=record)
    queue = data.get("queue") if isinstance(data.get("queue"), str) else ""
    if stored_raw is not None:
        return InFlight(queue=queue, raw=stored_raw, record=record)
    # Ours and Ruby's records are '{"queue":..,"run_at":..,"payload":<payload>}': cut the
    # payload's bytes out rather than re-encode the decoded value.
    head = f'{{"queue":{wire.dumps(queue)},"run_at":{wire.dumps(data.get("run_at"))},"payload":'
    if record.startswith(head) and record.endswith("}"):
        return InFlight(queue=queue, raw=record[len(head) : -1], record=record)
    try:
        raw = wire.dumps(data.get("payload"))
    except (ValueError, TypeError, RecursionError):
        raw = record
    return InFlight(queue=queue, raw=raw, record=record)
