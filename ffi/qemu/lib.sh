# shellcheck shell=bash
# Shared helpers for ffi/qemu/{build,guest,boot-test}.sh. Sourced, not executed.

VIOMMU_QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VIOMMU_CACHE:-$HOME/.cache/viommu}
mkdir -p "$CACHE"

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG:-viommu}" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run as root (CI and the dev machines are root; fall back to sudo elsewhere).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
}

# apt_install PKG... : installs the packages that are not installed yet.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_update
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# The URI of the Debian archive this machine already uses (deb822 or one-line format).
debian_uri() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# write_apt_source FILE TYPES : a bookworm-backports entry for the archive above.
# Rewrites FILE only when its content changes; returns 0 when it did (index needs an update).
write_apt_source() {
    local file=$1 types=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Written by viommu ffi/qemu scripts: QEMU 10.0 sources and Linux 6.12 from bookworm-backports.
Types: $types
URIs: $(debian_uri)
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    if [ -f "$file" ] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 1; fi
    log "writing $file"
    as_root install -m 0644 "$tmp" "$file"
    rm -f "$tmp"
    return 0
}

# Whether /dev/kvm can run an ordinary guest is decided by boot-test.sh (probe boot).

# hmp SOCKET COMMAND : send one human-monitor command to a QEMU started with
# `-monitor unix:SOCKET,server=on,wait=off` and print its reply (for `quit`, whatever
# arrives before QEMU closes the socket). Waits for the socket to appear (30 s).
hmp() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import os, re, socket, sys, time
path, command = sys.argv[1], sys.argv[2]
for _ in range(300):
    if os.path.exists(path):
        break
    time.sleep(0.1)
s = socket.socket(socket.AF_UNIX)
s.settimeout(900)
s.connect(path)
def until_prompt():
    buf = b""
    while not buf.endswith(b"(qemu) "):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")
until_prompt()
s.sendall(command.encode() + b"\n")
reply = until_prompt()
# Drop the terminal control sequences of the monitor's line editor.
reply = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", reply)
# The first line is the line editor's echo of the command, redrawn once per character.
lines = [l for l in reply.split("\n")[1:] if l and not l.startswith("(qemu)")]
print("\n".join(lines))
PY
}

# wait_for_line FILE REGEX PID SECONDS : wait until a line of FILE (CRs dropped) matches
# REGEX; fails when PID exits or SECONDS pass first.
wait_for_line() {
    local file=$1 re=$2 pid=$3 limit=$4 start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        tr -d '\r' 2>/dev/null <"$file" | grep -qE "$re" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 1
    done
    return 1
}
