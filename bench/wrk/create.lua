-- wrk script for bench/scale: creates service tokens through the API, each with a name no
-- other request uses (RUN, the thread's number and a counter). The owner's session comes in
-- the Authorization header (-H).
--
--   wrk ... -s create.lua http://127.0.0.1:PORT/api/v1/access-tokens -- RUN

local threads = {}

function setup(thread)
    thread:set("number", #threads)
    table.insert(threads, thread)
end

local run
local made = 0

function init(args)
    run = args[1]
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    made = made + 1
    local body = string.format(
        '{"name":"new-%s-%d-%d","type":"Service","permissions":[{"resourceType":"flag",' ..
        '"effect":"allow","actions":["*"],"resources":["project/*:env/*:flag/*"]}]}',
        run, number, made)
    return wrk.format(nil, nil, nil, body)
end
