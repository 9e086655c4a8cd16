-- A stand-in for pktgen-dpdk's Lua API, to run bench/pktgen scripts without
-- pktgen (which needs DPDK and GitHub to build).
--
--   lua5.3 tests/pktgen/pktgen_api.lua SCRIPT RECORD
--
-- Mirrors pktgen-dpdk 23.03.0, app/lpktgenlib.c (tables `pktgenlib` and
-- `pktgenlib_range`): each function takes exactly the argument count its C
-- binding's lua_gettop switch accepts and checks each argument the way that
-- binding does (luaL_checkstring: a string or a number; luaL_checkinteger: an
-- integer-valued number or numeric string; luaL_checknumber: a number or
-- numeric string), failing with the same message Lua's auxiliary library
-- gives ("bad argument #3 to 'set' (number expected, got string)"). Only the
-- functions below exist; any other call fails as a call to nil.
--
-- Range mode is modelled as pktgen_setup_cb/pktgen_range_ctor (app/pktgen.c,
-- app/pktgen-range.c) do it: at start, each of the RANGE_POOL mbufs of the
-- port's one TX queue gets the next packet of the range (every field stepped
-- once, wrapping from max to min), and those packets are replayed. The
-- distinct 5-tuples among them are the flows.
--
-- RECORD gets one line per call: the name and the arguments, tab separated,
-- then "flows N" after each start in range mode, and "error MSG" if the
-- script stops on an error (the harness then exits 1). The state gets the
-- standard libraries and the global `pktgen`, and no Pktgen.lua: pktgen finds
-- its Pktgen.lua only when started from its own folder, so a script run from
-- a checkout must not require it.

local script, record_path = arg[1], arg[2]
local record = assert(io.open(record_path, "w"))
local RANGE_POOL = 24576 -- MAX_MBUFS_PER_PORT = (DEFAULT_RX_DESC + DEFAULT_TX_DESC) * 8

local function typename(v) return v == nil and "no value" or type(v) end

-- the checks return the value or nil and luaL's message
local function argerror(i, fname, msg) return nil, string.format("bad argument #%d to '%s' (%s)", i, fname, msg) end

local check = {}
function check.s(fname, i, v)   -- luaL_checkstring
  if type(v) ~= "string" and type(v) ~= "number" then
    return argerror(i, fname, "string expected, got " .. typename(v))
  end
  return tostring(v)
end
function check.n(fname, i, v)   -- luaL_checknumber
  local n = (type(v) == "number" or type(v) == "string") and tonumber(v) or nil
  if n == nil then return argerror(i, fname, "number expected, got " .. typename(v)) end
  return n
end
function check.i(fname, i, v)   -- luaL_checkinteger
  local n = (type(v) == "number" or type(v) == "string") and tonumber(v) or nil
  if n == nil then return argerror(i, fname, "number expected, got " .. typename(v)) end
  local k = math.tointeger(n)
  if k == nil then return argerror(i, fname, "number has no integer representation") end
  return k
end
function check.p(fname, i, v)   -- portlist_parse(luaL_checkstring(...))
  local s, err = check.s(fname, i, v)
  if s and not (s == "all" or s:match("^[%d,%-]+$")) then err = fname .. ": bad port list '" .. s .. "'" end
  if err then return nil, err end
  return s
end

-- binding(name, sig, body): a function taking exactly #sig arguments of the
-- given kinds (p port list, s string, n number, i integer); errors are
-- raised at the caller's line, as luaL's are.
local function binding(name, sig, body)
  return function(...)
    local n = select("#", ...)
    if n ~= #sig then error(string.format("%s, wrong number of arguments", name), 2) end
    local args, parts = { ... }, { name }
    for i = 1, #sig do
      local v, err = check[sig:sub(i, i)](name, i, args[i])
      if err then error(err, 2) end
      args[i] = v
      parts[#parts + 1] = tostring(v)
    end
    record:write(table.concat(parts, "\t"), "\n")
    if body then
      local ok, r = pcall(body, table.unpack(args, 1, #sig))
      if not ok then error(r, 2) end
      return r
    end
  end
end

-- the range state of port 0 (what app/pktgen-range.c's pktgen_range_setup leaves, then the script's sets)
local range = {
  src_ip = { 0, 0, 0, 0 }, dst_ip = { 0, 1, 0, 0xffffffff }, src_port = { 0, 1, 0, 65535 },
  dst_port = { 0, 1, 0, 65535 },
}
local ranging, pcap = false, false

local function ip2n(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)")
  if a == nil then error("not an IPv4 address: " .. s, 0) end
  return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end
local WHAT = { start = 1, inc = 2, increment = 2, min = 3, minimum = 3, max = 4, maximum = 4 }
local function setter(field, conv)
  return function(_, what, v)
    local k = WHAT[what]
    if k == nil then error(field .. ": unknown '" .. what .. "'", 0) end
    range[field][k] = conv(v)
  end
end

local function range_flows()
  local cur = {}
  for f, r in pairs(range) do cur[f] = r[1] end
  local seen, n = {}, 0
  for _ = 1, RANGE_POOL do
    for f, r in pairs(range) do
      if r[2] ~= 0 then
        local v = cur[f] + r[2]
        if v < r[3] then v = r[4] elseif v > r[4] then v = r[3] end
        cur[f] = v
      else
        cur[f] = r[1]
      end
    end
    local key = string.format("%d:%d>%d:%d", cur.src_ip, cur.src_port, cur.dst_ip, cur.dst_port)
    if not seen[key] then seen[key], n = true, n + 1 end
  end
  return n
end

local SET_WHAT = {
  count = true, size = true, rate = true, burst = true, txburst = true, rxburst = true, cycles = true,
  sport = true, dport = true, ttl = true, seq_cnt = true, seqCnt = true, prime = true, dump = true,
}
local sent = 0

pktgen = {
  set = binding("set", "psn", function(_, what)
    if not SET_WHAT[what] then error("set does not support " .. what, 0) end
  end),
  start = binding("start", "p", function(ports)
    if ports ~= "0" then return end
    if ranging then record:write("flows\t", range_flows(), "\n") end
    sent = sent + 1000
  end),
  stop = binding("stop", "p"),
  clr = function() record:write("clr\n") end,   -- pktgen_clear_all reads no arguments
  delay = binding("delay", "i"),
  quit = function() record:write("quit\n") end, -- pktgen_exit reads no arguments
  screen = binding("screen", "s"),
  process = binding("process", "ps"),
  set_ipaddr = binding("set_ipaddr", "pss"),
  set_mac = binding("set_mac", "pss"),
  set_proto = binding("set_proto", "ps"),
  set_range = binding("set_range", "ps", function(_, s) ranging = s == "on" or s == "enable" or s == "start" end),
  pcap = binding("pcap", "ps", function(_, s) pcap = s == "on" or s == "enable" or s == "start" end),
  portStats = binding("portStats", "ps", function(ports, kind)
    if kind ~= "port" and kind ~= "rate" then return { n = 0 } end
    local pid = tonumber(ports)
    return { [pid] = { opackets = sent, ipackets = sent - 10, ibytes = 0, obytes = 0, ierrors = 0,
                       oerrors = 0, rx_nombuf = 0, imissed = 0 }, n = 1 }
  end),
  range = {
    dst_mac = binding("dst_mac", "pss"),
    src_mac = binding("src_mac", "pss"),
    set_type = binding("set_type", "ps"),
    src_ip = binding("src_ip", "pss", setter("src_ip", ip2n)),
    dst_ip = binding("dst_ip", "pss", setter("dst_ip", ip2n)),
    ip_proto = binding("ip_proto", "ps"),
    src_port = binding("src_port", "psi", setter("src_port", function(v) return v % 65536 end)),
    dst_port = binding("dst_port", "psi", setter("dst_port", function(v) return v % 65536 end)),
    pkt_size = binding("pkt_size", "psi"),
  },
}

local ok, err = pcall(dofile, script)
if not ok then
  record:write("error\t", tostring(err), "\n")
  record:close()
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
record:close()
