-- wrk script: every request a NEW webhook delivery, pre-signed, read from a file.
--
--   wrk -t1 -c64 -d10s -s benchmarks/wrk/deliveries.lua URL -- REQUESTS ACKS NTHREADS
--
-- REQUESTS: one delivery per line, "<Stripe-Signature value>\t<JSON body>" (benchmarks/server.py
-- writes it just before the run: Stripe signatures are only good for 300 s). Thread k of
-- NTHREADS sends lines k+1, k+1+NTHREADS, ... so no two threads send the same delivery; a
-- thread that runs out starts again (a redelivery) and counts it in "wrapped".
-- ACKS: a path prefix; thread k writes the event id of every 2xx answer to ACKS.k, one a line,
-- so the caller can check each acknowledged delivery against the database.
-- At the end one line "JSON {...}" on stdout: counts by status, latency percentiles (µs).

local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local path, acks, nthreads = args[1], args[2], tonumber(args[3] or "1")
   local path_url = wrk.path
   reqs = {}
   local n = 0
   local k = 0
   for line in io.lines(path) do
      if k % nthreads == id then
         local tab = line:find("\t", 1, true)
         local sig, body = line:sub(1, tab - 1), line:sub(tab + 1)
         n = n + 1
         reqs[n] = wrk.format("POST", path_url, {
            ["Content-Type"] = "application/json",
            ["Stripe-Signature"] = sig,
         }, body)
      end
      k = k + 1
   end
   count = n
   i = 0
   wrapped = 0
   ok = 0
   codes = {}
   ack = io.open(acks .. "." .. id, "w")
   ack:setvbuf("full")
end

function request()
   i = i + 1
   if i > count then
      i = 1
      wrapped = wrapped + 1
   end
   return reqs[i]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
      local event_id = body:match('"event_id"%s*:%s*"([^"]*)"')
      if event_id then
         ack:write(event_id, "\n")
      end
      if ok % 1000 == 0 then
         ack:flush()
      end
   else
      local key = tostring(status)
      codes[key] = (codes[key] or 0) + 1
   end
end

function done(summary, latency, requests)
   local ok_total, wrapped_total, loaded = 0, 0, 0
   local bad = {}
   for _, thread in ipairs(threads) do
      ok_total = ok_total + thread:get("ok")
      wrapped_total = wrapped_total + thread:get("wrapped")
      loaded = loaded + thread:get("count")
      local c = thread:get("codes")
      for k, v in pairs(c) do
         bad[k] = (bad[k] or 0) + v
      end
   end
   local parts = {}
   for k, v in pairs(bad) do
      table.insert(parts, string.format('"%s": %d', k, v))
   end
   io.write(string.format(
      'JSON {"duration_us": %d, "requests": %d, "ok": %d, "non2xx": {%s}, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"wrapped": %d, "loaded": %d, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
      summary.duration, summary.requests, ok_total, table.concat(parts, ", "),
      summary.errors.connect, summary.errors.read, summary.errors.write,
      summary.errors.status, summary.errors.timeout,
      wrapped_total, loaded,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
