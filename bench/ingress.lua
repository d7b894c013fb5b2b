-- wrk script of the ingress benchmark (bench/ingress.py): every request POSTs an Exotel v1
-- terminal status callback as multipart/form-data to BENCH_PATH (the callback path with
-- its token, correlation parameters and sig, or the baseline's path).
--   BENCH_MODE=distinct  a new CallSid per request (per thread prefix + counter)
--   BENCH_MODE=same      one CallSid for every request (a burst of one call's callbacks);
--                        ConversationDuration counts up, so every callback is a new event
-- done() prints one JSON line: requests, non-2xx/3xx, socket errors, latency percentiles.
local path = os.getenv("BENCH_PATH") or "/"
local mode = os.getenv("BENCH_MODE") or "distinct"
local run = os.getenv("BENCH_RUN") or "run"
local boundary = "exotelbench7MA4YWxkTrZu0gW"
local headers = { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }
local counter = 0
local prefix = run
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  prefix = run .. "t" .. tostring(thread_number or 0) .. "n"
end

local function field(name, value)
  return "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"" .. name
    .. "\"\r\n\r\n" .. value .. "\r\n"
end

function request()
  counter = counter + 1
  local sid
  if mode == "same" then sid = run .. "same" else sid = prefix .. counter end
  local body = table.concat({
    field("CallSid", sid),
    field("EventType", "terminal"),
    field("From", "+919413740001"),
    field("To", "+918867990001"),
    field("PhoneNumberSid", "01130830001"),
    field("Status", "completed"),
    field("Direction", "outbound-api"),
    field("DateCreated", "2019-04-08 03:10:55"),
    field("DateUpdated", "2019-04-08 03:11:28"),
    field("StartTime", "2019-04-08 03:10:55"),
    field("EndTime", "2019-04-08 03:11:30"),
    field("RecordingUrl", ""),
    field("ConversationDuration", tostring((thread_number or 0) * 10000000 + counter)),
    field("Legs[0][Status]", "completed"),
    field("Legs[0][OnCallDuration]", "41"),
    field("Legs[1][Status]", "completed"),
    field("Legs[1][OnCallDuration]", "32"),
    "--" .. boundary .. "--\r\n",
  })
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
