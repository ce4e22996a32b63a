-- wrk script for the ccgate bench: POST one fixed body with fixed headers, keep-alive,
-- and print a one-line JSON summary (latency in microseconds) from done().
--   BENCH_BODY_FILE     file whose bytes are the request body
--   BENCH_HEADERS_FILE  "name: value" lines
--   BENCH_PATH          request path (default /v1/messages)

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/messages"
wrk.body = read_all(os.getenv("BENCH_BODY_FILE"))
for line in io.lines(os.getenv("BENCH_HEADERS_FILE")) do
  local name, value = line:match("^([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local function p(q) return latency:percentile(q) end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%.0f,"mean":%.2f,"stdev":%.2f,"max":%.0f,' ..
    '"p50":%.0f,"p75":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    p(50), p(75), p(90), p(99), p(99.9)))
end
