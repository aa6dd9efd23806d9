# Sourced by scripts/test, scripts/demo, scripts/bench: installs what the project needs on a bare
# machine (Debian packages when root, a venv with the project and its extras) and is a no-op when
# everything is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# binary -> Debian package
DEB_NEEDS=(
  "nginx:nginx-light"
  "dovecot:dovecot-imapd"
  "redis-server:redis-server"
  # network namespaces for the distributed crawl's separate-hosts test (ip netns add, veth)
  "ip:iproute2"
  # the mailsync report's browser test (tests/integration/test_mailsync_report.py)
  "chromium:chromium"
  "chromedriver:chromium-driver"
)

_missing_debs() {
  local pkgs=() entry bin pkg
  for entry in "${DEB_NEEDS[@]}"; do
    bin="${entry%%:*}"; pkg="${entry#*:}"
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1; then pkgs+=("$pkg"); fi
  done
  # nginx's echo module (echo_sleep gives the latency port)
  if [ ! -e /usr/lib/nginx/modules/ngx_http_echo_module.so ]; then pkgs+=("libnginx-mod-http-echo"); fi
  echo "${pkgs[@]:-}"
}

ensure_debs() {
  local missing
  missing="$(_missing_debs)"
  [ -z "${missing// /}" ] && return 0
  if [ "$(id -u)" != "0" ]; then
    echo "scripts: missing Debian packages: $missing (run as root, or: sudo apt-get install $missing)" >&2
    return 0
  fi
  echo "scripts: installing Debian packages: $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing >/dev/null
}

ensure_venv() {
  local py="${PYTHON:-python3}" stamp=".venv/.fetchlab-installed" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -x .venv/bin/python ]; then
    echo "scripts: creating .venv" >&2
    "$py" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "scripts: installing the project and its extras into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[dev,gevent,redis,bench,aioimaplib]"
    echo "$want" > "$stamp"
  fi
}

# pywb and py-wacz, for the replay tests (tests/integration/test_crawl_replay.py): in a venv of
# their own, because pywb pins old libraries (redis 2.10 against the redis extra's >=5). The tests
# run their programs (wayback, wb-manager, wacz) from .venv-replay/bin.
REPLAY_PKGS="pywb>=2.10,<2.11 wacz>=0.6,<0.7"

ensure_replay_venv() {
  local py="${PYTHON:-python3}" stamp=".venv-replay/.fetchlab-installed"
  if [ ! -x .venv-replay/bin/python ]; then
    echo "scripts: creating .venv-replay (pywb, py-wacz)" >&2
    "$py" -m venv .venv-replay
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$REPLAY_PKGS" ]; then
    echo "scripts: installing $REPLAY_PKGS into .venv-replay" >&2
    # shellcheck disable=SC2086
    .venv-replay/bin/python -m pip install -q $REPLAY_PKGS
    echo "$REPLAY_PKGS" > "$stamp"
  fi
}

# The peers the benchmarks compare against (not needed by the tests): wget, mbsync (isync),
# OfflineIMAP. Installed when running as root; otherwise the bench skips a missing peer.
ensure_bench_debs() {
  local pkgs=() entry bin pkg
  for entry in "wget:wget" "mbsync:isync" "offlineimap:offlineimap3"; do
    bin="${entry%%:*}"; pkg="${entry#*:}"
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1; then pkgs+=("$pkg"); fi
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != "0" ]; then
    echo "scripts: benchmark peers missing: ${pkgs[*]} (the bench skips them)" >&2
    return 0
  fi
  echo "scripts: installing benchmark peers: ${pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null || \
    echo "scripts: could not install ${pkgs[*]}; the bench skips what is missing" >&2
}
