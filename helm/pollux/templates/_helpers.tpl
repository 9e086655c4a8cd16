{{/* Names and labels. */}}
{{- define "pollux.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pollux.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pollux.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pollux.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pollux.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "pollux.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pollux.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pollux.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pollux.passwordSecret" -}}
{{- default (printf "%s-bgp" (include "pollux.fullname" .)) .Values.bgpPassword.existingSecret -}}
{{- end -}}

{{- define "pollux.hasPassword" -}}
{{- if or .Values.bgpPassword.value .Values.bgpPassword.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Paths inside the pod; the config points at them. */}}
{{- define "pollux.paths" -}}
config: /etc/pollux/config
configFile: /etc/pollux/config/pollux.yaml
nodeLookupDir: /etc/pollux/node-lookup
nodeLookupFile: /etc/pollux/node-lookup/nodeLookup.yaml
passwordDir: /etc/pollux/bgp
podinfo: /etc/podinfo
hugepages: /hugepages
run: /run/pollux
socket: /run/pollux/pollux.sock
dpdkRun: /var/run/dpdk
{{- end -}}

{{/*
The environment variable the SR-IOV device plugin sets for a resource:
PCIDEVICE_ + the name upper-cased, with . and / (and -) as _.
*/}}
{{- define "pollux.envVar" -}}
{{- printf "PCIDEVICE_%s" (. | upper | replace "." "_" | replace "/" "_" | replace "-" "_") -}}
{{- end -}}

{{/*
A port's device: env:PCIDEVICE_<RESOURCE> when the resource backs one network,
env:PCIDEVICE_<RESOURCE>@<network> when it backs several (the kubelet does not
order the VFs of a resource by network; the vfio crate picks by Multus's
network-status). Argument: (list $root $network).
*/}}
{{- define "pollux.device" -}}
{{- $root := index . 0 -}}
{{- $net := index . 1 -}}
{{- $n := 0 -}}
{{- range $root.Values.sriov.networks -}}
{{- if eq .resource $net.resource }}{{ $n = add1 $n }}{{ end -}}
{{- end -}}
{{- if gt $n 1 -}}
env:{{ include "pollux.envVar" $net.resource }}@{{ $net.name }}
{{- else -}}
env:{{ include "pollux.envVar" $net.resource }}
{{- end -}}
{{- end -}}

{{/* resource name -> number of VFs, as YAML. */}}
{{- define "pollux.vfCounts" -}}
{{- $counts := dict -}}
{{- range .Values.sriov.networks -}}
{{- $_ := set $counts .resource (add1 (get $counts .resource | default 0)) -}}
{{- end -}}
{{- toYaml $counts -}}
{{- end -}}

{{/*
The pollux config of one instance (DESIGN.md §4 keys). Argument: (list $root $inst).
*/}}
{{- define "pollux.config" -}}
{{- $root := index . 0 -}}
{{- $inst := index . 1 -}}
{{- $v := $root.Values -}}
{{- $paths := include "pollux.paths" $root | fromYaml -}}
{{- $cfg := deepCopy $v.config -}}
{{- $dp := $cfg.dataplane -}}
{{- $workers := $dp.workers -}}
{{- if not (kindIs "slice" $workers) -}}
{{- if lt (int $v.resources.cpu) (add1 (int $workers)) -}}
{{- fail (printf "resources.cpu is %v but config.dataplane.workers is %v: a Guaranteed pod needs one whole CPU per worker plus one for the control thread (set resources.cpu >= %d)" $v.resources.cpu $workers (add1 (int $workers))) -}}
{{- end -}}
{{- end -}}
{{- $ports := list -}}
{{- range $p := $v.config.dataplane.ports -}}
{{- $port := deepCopy $p -}}
{{- range $net := $v.sriov.networks -}}
{{- if eq $net.port $p.name -}}
{{- $_ := set $port "device" (include "pollux.device" (list $root $net)) -}}
{{- end -}}
{{- end -}}
{{- if not $port.device -}}
{{- fail (printf "config.dataplane.ports[%s] has no device: list a network with `port: %s` in sriov.networks, or give the port a `device`" $p.name $p.name) -}}
{{- end -}}
{{- $ips := get ($inst.selfIps | default dict) $p.name -}}
{{- if $ips -}}
{{- $_ := set $port "selfIps" $ips -}}
{{- end -}}
{{- $ports = append $ports $port -}}
{{- end -}}
{{- $_ := set $dp "ports" $ports -}}
{{- $bgp := $cfg.bgp -}}
{{- /* One setting for the whole drain: drain.seconds (docs/scale-out.md). */ -}}
{{- $_ := set $bgp "drainDelayMs" (mul (int $v.drain.seconds) 1000) -}}
{{- if $inst.routerId -}}
{{- $_ := set $bgp "routerId" $inst.routerId -}}
{{- end -}}
{{- $neighbors := list -}}
{{- range $n := ($v.config.bgp.neighbors | default list) -}}
{{- $nb := deepCopy $n -}}
{{- if hasKey $nb "nodeLookup" -}}
{{- if $nb.nodeLookup -}}
{{- $_ := set $nb "nodeLookup" $paths.nodeLookupFile -}}
{{- else -}}
{{- $_ := unset $nb "nodeLookup" -}}
{{- end -}}
{{- end -}}
{{- if hasKey $nb "md5" -}}
{{- if $nb.md5 -}}
{{- if not (include "pollux.hasPassword" $root) -}}
{{- fail "a BGP neighbor has md5: true but bgpPassword has neither value nor existingSecret" -}}
{{- end -}}
{{- $_ := set $nb "passwordFile" (printf "%s/%s" $paths.passwordDir $v.bgpPassword.key) -}}
{{- end -}}
{{- $_ := unset $nb "md5" -}}
{{- end -}}
{{- $neighbors = append $neighbors $nb -}}
{{- end -}}
{{- $_ := set $bgp "neighbors" $neighbors -}}
{{- /* scaleOut.peers: the other instances' self IPs on the first port (where
     the router's ECMP traffic comes in), unless config.scaleOut.peers names
     them (docs/scale-out.md). */ -}}
{{- $so := deepCopy ($v.config.scaleOut | default dict) -}}
{{- if not (hasKey $so "peers") -}}
{{- $first := (index $v.config.dataplane.ports 0).name -}}
{{- $peers := list -}}
{{- range $other := $v.instances -}}
{{- if ne $other.name $inst.name -}}
{{- range $ip := (get ($other.selfIps | default dict) $first | default list) -}}
{{- $peers = append $peers (index (splitList "/" $ip) 0) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $peers -}}
{{- $_ := set $so "peers" $peers -}}
{{- end -}}
{{- end -}}
{{- if $so -}}
{{- $_ := set $cfg "scaleOut" $so -}}
{{- end -}}
{{- $_ := set $cfg "instance" (dict "name" (printf "%s-%s" (include "pollux.fullname" $root) $inst.name)) -}}
{{- if $v.metrics.interface -}}
{{- $_ := set $cfg "api" (dict "socket" $paths.socket "metrics" (printf "0.0.0.0:%d" (int $v.metrics.port)) "metricsInterface" $v.metrics.interface) -}}
{{- else -}}
{{- $_ := set $cfg "api" (dict "socket" $paths.socket "metrics" (printf "127.0.0.1:%d" (int $v.metrics.port))) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The exec command of a probe: `pollux show` against the API socket. */}}
{{- define "pollux.readinessCommand" -}}
{{- $sock := (include "pollux.paths" . | fromYaml).socket -}}
- sh
- -c
- >-
  pollux show stats --json --api {{ $sock }} | grep -q '"workers_running": *true'
  && pollux show bgp summary --json --api {{ $sock }} | grep -q '"state": *"Established"'
{{- end -}}

{{- define "pollux.livenessCommand" -}}
{{- $sock := (include "pollux.paths" . | fromYaml).socket -}}
- pollux
- show
- interfaces
- --api
- {{ $sock }}
{{- end -}}
