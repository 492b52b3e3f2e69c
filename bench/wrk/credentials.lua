-- wrk script for bench/scale: each request presents a credential drawn from a file of
-- fixed-length credentials written back to back (bench/scale_seed.py writes them).
--
--   wrk ... -s credentials.lua URL -- FILE COUNT MODE PATH ACTION RESOURCE THREADS [START] [buckets]
--
-- MODE picks the credential's index in the file:
--   hot         always the first
--   uniform     any of COUNT, uniformly
--   loguniform  rank drawn log-uniformly (Zipf-like: index r with probability ~ 1/(r+1))
--   sweep       each thread walks START + its number + THREADS × k: every credential once
-- PATH is /api/v1/auth/check (a POST asking for ACTION on RESOURCE) or a baseline path (GET,
-- same Authorization header, same drawing work, so the client costs the same on both).
-- With `buckets`, responses are counted per 100 ms of CLOCK_MONOTONIC (Python's
-- time.monotonic) and printed by done() as "bucket <index> <count>".

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *out);
]]
local now = ffi.new("bench_timespec")

local CREDENTIAL_LEN = 53
local threads = {}

function setup(thread)
    thread:set("number", #threads)
    table.insert(threads, thread)
end

local creds, count, mode, method, path, body, nthreads, start, log_count
local headers = {}
walked = 0 -- global: done() reads it through thread:get

local function count_response()
    ffi.C.clock_gettime(1, now)
    local bucket = tonumber(now.tv_sec) * 10 + math.floor(tonumber(now.tv_nsec) / 1e8)
    buckets[bucket] = (buckets[bucket] or 0) + 1
end

function init(args)
    local file = assert(io.open(args[1], "rb"))
    creds = file:read("*a")
    file:close()
    count = tonumber(args[2])
    assert(#creds >= count * CREDENTIAL_LEN, "the credentials file is shorter than COUNT")
    mode = args[3]
    path = args[4]
    nthreads = tonumber(args[7])
    start = tonumber(args[8] or "0")
    log_count = math.log(count)
    if path == "/api/v1/auth/check" then
        method = "POST"
        headers["Content-Type"] = "application/json"
        body = string.format('{"checks":[{"action":"%s","resource":"%s"}]}', args[5], args[6])
    else
        method = "GET"
    end
    math.randomseed(os.time() * 1000 + number * 7919)
    if args[9] == "buckets" then
        buckets = {}
        response = count_response
    end
end

local function pick()
    if mode == "hot" then
        return 0
    elseif mode == "uniform" then
        return math.random(0, count - 1)
    elseif mode == "loguniform" then
        local rank = math.floor(math.exp(math.random() * log_count)) - 1
        if rank >= count then rank = count - 1 end
        return rank
    end
    local index = start + number + nthreads * walked
    walked = walked + 1
    return index % count
end

function request()
    local i = pick() * CREDENTIAL_LEN
    headers["Authorization"] = "Bearer " .. creds:sub(i + 1, i + CREDENTIAL_LEN)
    return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
    for _, thread in ipairs(threads) do
        io.write(string.format("walked %d %d\n", thread:get("number"), thread:get("walked") or 0))
        local b = thread:get("buckets")
        if b then
            for bucket, n in pairs(b) do
                io.write(string.format("bucket %d %d\n", bucket, n))
            end
        end
    end
end
