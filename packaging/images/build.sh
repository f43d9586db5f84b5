#!/bin/sh
# Builds the two sidecar images faasd runs by default, NATS and Prometheus, as OCI archives in
# packaging/images/out/ from Debian's nats-server and prometheus packages: the binary, the
# libraries ldd names, and a few /etc files, one layer, no registry and no Internet. The same
# packages give the same bytes (mkimage.py; SOURCE_DATE_EPOCH, default 0, dates everything).
#
# Their names are the daemon's defaults (docker.io/library/nats:<version>,
# docker.io/prom/prometheus:v<version>, from the packages' versions; override with NATS_REF,
# PROMETHEUS_REF), so with the archives in <state-dir>/images/ (or `faasd image import`) the
# default services.yaml runs them without a pull. Their layout follows the official images:
# /nats-server, and /bin/prometheus run as 65534 in /prometheus.
#
#   packaging/images/build.sh [OUT_DIR]      needs: nats-server prometheus python3
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkimage="python3 $here/mkimage.py"
nats_bin=${NATS_SERVER_BIN:-/usr/sbin/nats-server}
prom_bin=${PROMETHEUS_BIN:-/usr/bin/prometheus}
mkdir -p "$out"

upstream_version() {  # 2.9.10-1+b2 -> 2.9.10
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed 's/^[0-9]*://; s/-[^-]*$//; s/+ds[0-9]*$//'
}

# --file arguments for the shared libraries and loader a dynamic binary needs, each at the path
# ldd names (its contents from wherever that path leads on this host).
libraries() {
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
      printf -- '--file=%s:%s:0755\n' "$(readlink -f "$lib")" "$lib"
    done
}

passwd='root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
'
group='root:x:0:
nogroup:x:65534:
'
# Names from /etc/hosts first (faasd writes gateway and localhost there), then DNS. Without
# this file glibc and Go both ask DNS first, so Prometheus sent a query for "gateway" to the
# host's nameserver at every scrape (the airgap test saw it on a box with no route out).
nsswitch='hosts: files dns
'

for bin in "$nats_bin" "$prom_bin"; do
  [ -x "$bin" ] || { echo "build.sh: $bin not found (apt-get install nats-server prometheus)" >&2; exit 1; }
done

nats_version=${NATS_VERSION:-$(upstream_version nats-server)}
prom_version=${PROMETHEUS_VERSION:-$(upstream_version prometheus)}
: "${nats_version:=$("$nats_bin" --version | sed 's/.*v//')}"
: "${prom_version:=$("$prom_bin" --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p')}"
nats_ref=${NATS_REF:-docker.io/library/nats:$nats_version}
prom_ref=${PROMETHEUS_REF:-docker.io/prom/prometheus:v$prom_version}

# shellcheck disable=SC2046
$mkimage --ref "$nats_ref" --out "$out/nats.tar" \
  --file "$nats_bin:nats-server:0755" $(libraries "$nats_bin") \
  --text "etc/passwd=$passwd" --text "etc/group=$group" --text "etc/nsswitch.conf=$nsswitch" \
  --text "nats-server.conf=port: 4222
http: 8222
" \
  --dir tmp:0:0:1777 --dir data \
  --config '{"Entrypoint": ["/nats-server"], "Cmd": ["--config", "nats-server.conf"],
             "ExposedPorts": {"4222/tcp": {}, "6222/tcp": {}, "8222/tcp": {}},
             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}'

# shellcheck disable=SC2046
$mkimage --ref "$prom_ref" --out "$out/prometheus.tar" \
  --file "$prom_bin:bin/prometheus:0755" $(libraries "$prom_bin") \
  --text "etc/passwd=$passwd" --text "etc/group=$group" --text "etc/nsswitch.conf=$nsswitch" \
  --text "etc/prometheus/prometheus.yml=global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [\"localhost:9090\"]
" \
  --dir tmp:0:0:1777 --dir prometheus:65534:65534:0755 \
  --config '{"Entrypoint": ["/bin/prometheus"],
             "Cmd": ["--config.file=/etc/prometheus/prometheus.yml",
                     "--storage.tsdb.path=/prometheus"],
             "User": "65534:65534", "WorkingDir": "/prometheus",
             "ExposedPorts": {"9090/tcp": {}},
             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}'
