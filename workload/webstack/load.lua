-- wrk script of the web-stack testbed: a seeded mix of shop requests with zipf-like key
-- popularity and Poisson arrivals on each connection.
--
--   wrk -t T -c C -d D -s load.lua http://nginx:8080 -- seed meanDelayMs products categories users
--       zipfS productRange wProduct wCategory wUser wOrder wTop
--
-- Only numbers after "--", so the normal load and the cache-abuse attack (zipfS 0: uniform
-- keys over productRange, four times the catalogue, so almost every request misses the cache)
-- run the same program with the same script: the attack adds no new role.

local threads_seen = 0

function setup(thread)
  threads_seen = threads_seen + 1
  thread:set("tid", threads_seen)
end

-- cumulative zipf weights over ranks 1..n (s = 0: uniform, no table needed)
local function zipf_cdf(n, s)
  if s <= 0 then return nil end
  local cdf, sum = {}, 0
  for k = 1, n do
    sum = sum + 1 / (k ^ s)
    cdf[k] = sum
  end
  for k = 1, n do cdf[k] = cdf[k] / sum end
  return cdf
end

-- rank → key: a fixed scatter so the popular keys are not simply 1, 2, 3…
local function scatter(rank, n)
  if n % 7919 == 0 then return rank end
  return ((rank - 1) * 7919) % n + 1
end

local function draw(cdf, n)
  if not cdf then return math.random(1, n) end
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return scatter(lo, n)
end

local mean_delay, products, categories, users, range
local pcdf, ccdf, ucdf
local weights = {}

function init(args)
  local a = {}
  for i = 1, 12 do a[i] = tonumber(args[i]) end
  local seed = a[1] or 1
  mean_delay = a[2] or 0
  products, categories, users = a[3] or 20000, a[4] or 50, a[5] or 10000
  local s = a[6] or 1.1
  range = a[7] or products
  local w = { a[8] or 70, a[9] or 12, a[10] or 10, a[11] or 5, a[12] or 3 }
  local total = 0
  for i = 1, 5 do total = total + w[i] end
  local acc = 0
  for i = 1, 5 do
    acc = acc + w[i] / total
    weights[i] = acc
  end
  math.randomseed(seed * 1000 + (tid or 1))
  pcdf = zipf_cdf(range, s)
  ccdf = zipf_cdf(categories, s * 0.6)
  ucdf = zipf_cdf(users, s * 0.8)
end

local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  local u = math.random()
  if u < weights[1] then
    return wrk.format("GET", "/product/" .. draw(pcdf, range))
  elseif u < weights[2] then
    return wrk.format("GET", "/category/" .. draw(ccdf, categories))
  elseif u < weights[3] then
    return wrk.format("GET", "/user/" .. draw(ucdf, users))
  elseif u < weights[4] then
    local body = "user=" .. draw(ucdf, users) .. "&product=" .. draw(pcdf, math.min(range, products)) .. "&qty=" .. math.random(1, 3)
    return wrk.format("POST", "/order", form, body)
  end
  return wrk.format("GET", "/top")
end

-- exponential gaps: each connection is a Poisson source of mean rate 1000/mean_delay per second
function delay()
  if mean_delay <= 0 then return 0 end
  return -math.log(1 - math.random()) * mean_delay
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"durationUs":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latencyMeanUs":%.1f,"latencyP99Us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(99)))
end
