-- pktgen-dpdk script: pollux's virtual server under pktgen's traffic.
-- Written against pktgen-dpdk 23.03.0's Lua API (app/lpktgenlib.c); run end
-- to end with it on memif links (bench/pktgen/README.md).
--
-- Port 0 sends UDP (or TCP) to the VIP; pollux DNATs every flow to a member
-- that is port 1's address, so what pollux forwards comes back on port 1 and
-- is counted there. Each row runs DURATION seconds at RATE % of line rate and
-- prints the packets sent on port 0, those back on port 1 and the loss.
--
-- Two kinds of traffic:
--   range mode (default): one row per frame size in SIZES. Source addresses
--     and source ports walk their ranges together, one step per packet, so
--     the flows are lcm(SRC_IPS, SRC_PORTS): the script refuses counts that
--     are not coprime. pktgen builds range packets once per mbuf of a 24576-
--     mbuf pool per TX queue and replays them, so at most 24576 flows per TX
--     queue: more are refused too (use pcap mode).
--   pcap mode (PCAP=on): one row with the frames of the pcap pktgen loaded
--     (`-s 0:FILE`, written by bench/pktgen/flows-pcap.py: every pair of
--     SRC_IPS x SRC_PORTS, any count). The flow rows (64 k, 1 M) use it.
--
-- Parameters (environment, read when the script loads):
--   VIP_MAC     pollux's MAC on the link port 0 reaches        (required)
--   VIP         the virtual server address                     (default 192.0.2.10)
--   VIP_PORT    the virtual server port                        (default 80)
--   SRC_IP      first client address, port 0's own address     (default 198.18.0.1)
--   SRC_IPS     how many client addresses, range mode          (default 16)
--   SRC_PORTS   how many source ports, range mode              (default 63)
--   P1_IP       port 1's address = the member (prefix length)  (default 198.19.0.1/24)
--   SIZES       frame sizes with the FCS, comma separated      (default 64,128,256,512,1024,1518)
--   RATE        percent of line rate                           (default 100)
--   DURATION    seconds per row                                (default 10)
--   PROTO       udp | tcp                                      (default udp)
--   PCAP        on: send port 0's pcap instead of ranges       (default off)
--   QUIT        1: quit pktgen when done (unattended runs)     (default 0)
--
-- Run (from anywhere: the script needs nothing but pktgen's built-in `pktgen`):
--   VIP_MAC=... pktgen -l 0-2 -n 4 -a <VF0> -a <VF1> -- -P -m "1.0,2.1" \
--     -f bench/pktgen/pollux-range.lua

local RANGE_POOL = 24576 -- pktgen 23.03 MAX_MBUFS_PER_PORT: range mbufs per TX queue

local function printf(...) io.write(string.format(...)); io.flush() end

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then
    if default == nil then error(name .. " must be set (see the top of this script)") end
    return default
  end
  return v
end

-- a whole number from the environment (pktgen's integer arguments refuse 2.5)
local function envint(name, default)
  local v = env(name, default)
  local n = math.tointeger(tonumber(v))
  if n == nil or n < 0 then error(name .. " must be a whole number, not " .. v) end
  return n
end

local vip_mac   = env("VIP_MAC")
local vip       = env("VIP", "192.0.2.10")
local vip_port  = envint("VIP_PORT", "80")
local src_ip    = env("SRC_IP", "198.18.0.1")
local src_ips   = envint("SRC_IPS", "16")
local src_ports = envint("SRC_PORTS", "63")
local p1_ip     = env("P1_IP", "198.19.0.1/24")
local rate      = envint("RATE", "100")
local duration  = envint("DURATION", "10")
local proto     = env("PROTO", "udp")
local sizes_arg = env("SIZES", "64,128,256,512,1024,1518")
local pcap      = env("PCAP", "off") == "on"
local quit      = env("QUIT", "0") == "1"

local function gcd(a, b) while b ~= 0 do a, b = b, a % b end return a end

-- the address `n` after `ip`
local function ip_add(ip, n)
  local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a == nil then error("not an IPv4 address: " .. ip) end
  local v = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
  return string.format("%d.%d.%d.%d", v // 16777216 % 256, v // 65536 % 256, v // 256 % 256, v % 256)
end

local sizes = {}
for s in sizes_arg:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(s))
  if n == nil or n < 64 or n > 1518 then
    error("SIZES: " .. s .. " is not a frame size 64..1518 (no pktgen release has IMIX)")
  end
  sizes[#sizes + 1] = n
end

local flows
if not pcap then
  if src_ips < 1 or src_ports < 1 or src_ports > 65535 - 10000 then
    error("SRC_IPS >= 1 and 1 <= SRC_PORTS <= 55535")
  end
  if gcd(src_ips, src_ports) ~= 1 then
    error(string.format("SRC_IPS %d and SRC_PORTS %d share a factor: pktgen steps both once per "
      .. "packet, so they give lcm = %d flows, not %d; pick coprime counts (16 x 63)",
      src_ips, src_ports, src_ips * src_ports // gcd(src_ips, src_ports), src_ips * src_ports))
  end
  flows = src_ips * src_ports
  if flows > RANGE_POOL then
    error(string.format("%d flows: pktgen's range mode replays %d prebuilt packets per TX queue; "
      .. "use pcap mode (PCAP=on, bench/pktgen/flows-pcap.py) above that", flows, RANGE_POOL))
  end
end

pktgen.stop("all")
pktgen.clr()
pktgen.set_ipaddr("0", "src", src_ip .. "/16")
pktgen.set_ipaddr("1", "src", p1_ip)      -- pollux has it as a static neighbor (README)
pktgen.set("0", "rate", rate)

if pcap then
  pktgen.set_range("0", "off")
  pktgen.pcap("0", "on")
else
  pktgen.pcap("0", "off")
  pktgen.range.ip_proto("0", proto)
  pktgen.range.dst_mac("0", "start", vip_mac)
  pktgen.range.dst_mac("0", "inc", "00:00:00:00:00:00")
  pktgen.range.dst_ip("0", "start", vip)
  pktgen.range.dst_ip("0", "inc", "0.0.0.0")
  pktgen.range.dst_ip("0", "min", vip)
  pktgen.range.dst_ip("0", "max", vip)
  pktgen.range.src_ip("0", "start", src_ip)
  pktgen.range.src_ip("0", "inc", "0.0.0.1")
  pktgen.range.src_ip("0", "min", src_ip)
  pktgen.range.src_ip("0", "max", ip_add(src_ip, src_ips - 1))
  pktgen.range.dst_port("0", "start", vip_port)
  pktgen.range.dst_port("0", "inc", 0)
  pktgen.range.dst_port("0", "min", vip_port)
  pktgen.range.dst_port("0", "max", vip_port)
  pktgen.range.src_port("0", "start", 10000)
  pktgen.range.src_port("0", "inc", 1)
  pktgen.range.src_port("0", "min", 10000)
  pktgen.range.src_port("0", "max", 10000 + src_ports - 1)
  pktgen.set_range("0", "on")
end

-- one row: `label` for the output, `size` the frame size (range mode) or nil
local function row(label, size)
  if size then
    pktgen.range.pkt_size("0", "start", size)   -- with the FCS: pktgen takes 4 off itself
    pktgen.range.pkt_size("0", "inc", 0)
    pktgen.range.pkt_size("0", "min", size)
    pktgen.range.pkt_size("0", "max", size)
  end
  pktgen.clr()
  pktgen.start("0")
  pktgen.delay(duration * 1000)
  pktgen.stop("0")
  pktgen.delay(1500)                      -- the last frames drain; "port" stats refresh each second
  local sent = pktgen.portStats("0", "port")[0].opackets
  local got = pktgen.portStats("1", "port")[1].ipackets
  local loss = sent > 0 and 100 * (sent - got) / sent or 0
  printf("pollux %5s B: sent %12d  back %12d  loss %7.3f %%  back %8.3f Mpps\n",
         label, sent, got, loss, got / duration / 1e6)
end

if pcap then
  printf("pollux pcap test: VIP %s:%d, port 0's pcap (flows as written), rate %d %%, %d s\n",
         vip, vip_port, rate, duration)
  row("pcap", nil)
else
  printf("pollux range test: VIP %s:%d (%s), %d x %d = %d flows, rate %d %%, %d s per size\n",
         vip, vip_port, proto, src_ips, src_ports, flows, rate, duration)
  for _, size in ipairs(sizes) do row(tostring(size), size) end
end
printf("pollux done\n")                  -- for unattended runs (memif-run.sh) to wait on
if quit then pktgen.quit() end
