-- pktgen-dpdk script: pollux's virtual server under range-mode traffic.
--
-- Port 0 sends UDP (or TCP) to the VIP, source addresses and ports walking a
-- range (one flow per (src ip, src port) pair); pollux DNATs every flow to a
-- member that lives on port 1's address, so what pollux forwards comes back
-- on port 1 and is counted there. For each frame size: run DURATION seconds
-- at RATE % of line rate, then print tx/rx packets and the loss.
--
-- Parameters (environment, read when the script loads):
--   VIP_MAC     pollux's VF MAC on the wire port 0 reaches   (required)
--   VIP         the virtual server address                   (default 192.0.2.10)
--   VIP_PORT    the virtual server port                      (default 80)
--   SRC_IP      first client address, port 0's own address   (default 198.18.0.1)
--   SRC_IPS     how many client addresses                    (default 256)
--   SRC_PORTS   how many source ports per address            (default 256)
--   P1_IP       port 1's address = the member pollux sends to (default 198.19.0.1/24)
--   SIZES       frame sizes, comma separated, or "imix"       (default 64,128,256,512,1024,1518)
--   RATE        percent of line rate                          (default 100)
--   DURATION    seconds per size                              (default 10)
--   PROTO       udp | tcp                                     (default udp)
--
-- Run: VIP_MAC=... pktgen -l 0-4 -n 4 -a <VF0> -a <VF1> -- -P -m "[1:2].0,[3:4].1" \
--        -f bench/pktgen/pollux-range.lua
-- (see bench/pktgen/README.md for the pollux side).

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then
    if default == nil then error(name .. " must be set (see the top of this script)") end
    return default
  end
  return v
end

local vip_mac   = env("VIP_MAC")
local vip       = env("VIP", "192.0.2.10")
local vip_port  = tonumber(env("VIP_PORT", "80"))
local src_ip    = env("SRC_IP", "198.18.0.1")
local src_ips   = tonumber(env("SRC_IPS", "256"))
local src_ports = tonumber(env("SRC_PORTS", "256"))
local p1_ip     = env("P1_IP", "198.19.0.1/24")
local rate      = tonumber(env("RATE", "100"))
local duration  = tonumber(env("DURATION", "10"))
local proto     = env("PROTO", "udp")
local sizes_arg = env("SIZES", "64,128,256,512,1024,1518")

-- the last address of a range that starts at `ip` and holds `n` addresses
local function ip_add(ip, n)
  local a, b, c, d = ip:match("(%d+)%.(%d+)%.(%d+)%.(%d+)")
  local v = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
  return string.format("%d.%d.%d.%d", v // 16777216 % 256, v // 65536 % 256, v // 256 % 256, v % 256)
end

pktgen.stop("all")
pktgen.clr()
pktgen.set_ipaddr("0", "src", src_ip .. "/16")
pktgen.set_ipaddr("1", "src", p1_ip)      -- pktgen answers ARP for it: pollux resolves the member

pktgen.range.dst_mac("0", "start", vip_mac)
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
pktgen.range.ip_proto("0", proto)
pktgen.set_range("0", "on")
pktgen.set("0", "rate", rate)

local function one(size)
  if size == "imix" then
    pktgen.set_range("0", "off")
    pktgen.set("0", "imix", "on")         -- pktgen's IMIX (7:4:1-like mix)
  else
    pktgen.set("0", "imix", "off")
    pktgen.set_range("0", "on")
    local s = tonumber(size) - 4          -- pktgen's sizes exclude the FCS
    pktgen.range.pkt_size("0", "start", s)
    pktgen.range.pkt_size("0", "inc", 0)
    pktgen.range.pkt_size("0", "min", s)
    pktgen.range.pkt_size("0", "max", s)
  end
  pktgen.clr()
  pktgen.start("0")
  pktgen.delay(duration * 1000)
  pktgen.stop("0")
  pktgen.delay(500)                       -- the last frames drain
  local tx = pktgen.portStats("0", "port")[0]
  local rx = pktgen.portStats("1", "port")[1]
  local sent, got = tx.opackets, rx.ipackets
  local loss = sent > 0 and 100 * (sent - got) / sent or 0
  printf("pollux %5s B: sent %12d  back %12d  loss %7.3f %%  back %8.3f Mpps\n",
         size, sent, got, loss, got / duration / 1e6)
end

printf("pollux range test: VIP %s:%d (%s), %d x %d flows, rate %d %%, %d s per size\n",
       vip, vip_port, proto, src_ips, src_ports, rate, duration)
for size in sizes_arg:gmatch("[^,]+") do one(size) end
