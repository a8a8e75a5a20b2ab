-- wrk request for bench/events/run.sh: publish a small event, and count the answers that are
-- not 202 (wrk itself only reports statuses >= 400).
wrk.method = "POST"
wrk.path = "/api/events"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"bench_event","n":1}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  other = 0
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  io.write(string.format("status 202: %d; other statuses: %d\n", a, o))
end
