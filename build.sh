#!/usr/bin/env bash
# CydYnni Hub — the one entry point.
#
#   ./build.sh [options]     build the SD image (see ./build.sh --help and build.conf)
#   ./build.sh test          install test dependencies, run every test, then build the image
#                            and boot-test it in QEMU (what CI runs; SKIP_IMAGE=1 skips that)
#   ./build.sh dev           run Mosquitto, Redis, MariaDB and the hub on localhost
#   ./build.sh bench         run the benchmarks in bench/
#   ./build.sh qemu          boot the last built image in QEMU (hub on localhost:8080)
#   ./build.sh assets        fetch the display's npm packages (package-lock.json) and copy
#                            uPlot into hub/web/static/vendor (no Node on the device)
#
# Thin glue only: the work is done by Python in image/, hub/, tests/ and bench/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ROOT}/.venv"
cd "$ROOT"

info() { printf '[INFO] %s\n' "$*"; }
die() { printf '[ERROR] %s\n' "$*" >&2; exit 1; }

# Debian packages the tests and the dev stack need (servers run as real processes).
TEST_APT_PACKAGES=(python3 python3-venv python3-dev gcc mosquitto mosquitto-clients
                   redis-server mariadb-server mariadb-client iproute2 util-linux dbus
                   avahi-daemon avahi-utils chromium fonts-dejavu-core curl
                   rauc squashfs-tools cryptsetup-bin libubootenv-tool u-boot-tools openssl
                   e2fsprogs fdisk faketime)

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root or install them)"
  info "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: tests start their own.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created" -eq 1 ] && rm -f "$policy"
  return 0
}

ensure_venv() {
  local stamp="${VENV}/.requirements-test.txt"
  if [ ! -x "${VENV}/bin/python" ]; then
    info "creating ${VENV}"
    python3 -m venv "$VENV"
  fi
  if ! cmp -s requirements-test.txt "$stamp"; then
    info "installing pinned Python packages (requirements-test.txt)"
    "${VENV}/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
    cp requirements-test.txt "$stamp"
  fi
  # The project itself, editable, for the `hub` command: no dependencies (pinned above) and
  # no build isolation (setuptools is pinned above too), so nothing unpinned is fetched.
  if [ ! -x "${VENV}/bin/hub" ] || ! cmp -s pyproject.toml "${VENV}/.pyproject.toml"; then
    info "installing the project (pip install -e ., for the hub command)"
    "${VENV}/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
      -e .
    cp pyproject.toml "${VENV}/.pyproject.toml"
  fi
}

# The display's third-party browser code comes from npm, pinned with integrity hashes in
# package-lock.json; only the built files are copied into the hub (and so into the image).
VENDOR_DIR="${ROOT}/hub/web/static/vendor"
cmd_assets() {
  if ! command -v npm >/dev/null; then apt_install npm; fi
  local stamp="${ROOT}/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "${ROOT}/node_modules/.lock-copy"; then
    info "npm ci (package-lock.json)"
    npm ci --no-audit --no-fund --ignore-scripts >/dev/null
    cp package-lock.json "${ROOT}/node_modules/.lock-copy"
  fi
  mkdir -p "$VENDOR_DIR"
  cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
     node_modules/uplot/LICENSE "$VENDOR_DIR/"
}

cmd_test() {
  apt_install "${TEST_APT_PACKAGES[@]}"
  ensure_venv
  cmd_assets
  info "goosebit (the OTA tests' fleet server) in its own venv"
  "${VENV}/bin/python" -m tests.ota.goosebit ensure-venv >/dev/null
  info "ruff"
  "${VENV}/bin/ruff" check .
  build_pid="" build_out="deploy/build-for-test.out"  # global: the EXIT trap reads it
  if [ "${SKIP_IMAGE:-0}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || die "the image build and boot test need root (or set SKIP_IMAGE=1)"
    # The unit tests mostly wait on their servers: the build uses the idle CPU meanwhile.
    info "building the SD image (./build.sh) in the background: ${build_out}"
    mkdir -p deploy
    setsid python3 -m image build >"${build_out}" 2>&1 &
    build_pid=$!
    trap '[ -z "${build_pid:-}" ] || kill -TERM -- "-${build_pid}" 2>/dev/null || kill -TERM "${build_pid}" 2>/dev/null || true' EXIT
  fi
  info "unit and integration tests (real Mosquitto, Redis, MariaDB, RAUC, goosebit)"
  "${VENV}/bin/python" -m pytest -q --ignore=tests/image -m "not qemu" "$@"
  if [ -z "${build_pid}" ]; then
    info "SKIP_IMAGE=1: not building or boot-testing the SD image"
    return 0
  fi
  info "waiting for the image build"
  if ! wait "${build_pid}"; then
    build_pid=""
    tail -n 40 "${build_out}" >&2
    die "the image build failed (${build_out}, deploy/build.log)"
  fi
  build_pid=""
  tail -n 12 "${build_out}"
  info "image tests: static checks, QEMU boots, the OTA journey (tests/image, tests/ota/test_ota_qemu.py)"
  # -s: the boot and OTA steps print their timings
  "${VENV}/bin/python" -m pytest -q -s tests/image tests/ota/test_ota_qemu.py
}

cmd_dev() {
  apt_install "${TEST_APT_PACKAGES[@]}"
  ensure_venv
  cmd_assets
  exec "${VENV}/bin/python" -m devstack "$@"
}

cmd_bench() {
  apt_install "${TEST_APT_PACKAGES[@]}"
  ensure_venv
  cmd_assets
  exec "${VENV}/bin/python" -m bench "$@"
}

# Image build (issue 3): Python in image/, stages in stage-scripts/, settings in build.conf.
cmd_build() {
  case "${1:-}" in
    -h|--help) exec python3 -m image build --help ;;
  esac
  [ "$(id -u)" -eq 0 ] || die "the image build needs root (mmdebstrap, chroot): sudo ./build.sh"
  cmd_assets  # the display's uPlot goes into the image with hub/ (roles/hub copies hub/)
  exec python3 -m image build "$@"
}

cmd_qemu() {
  exec python3 -m image qemu "$@"
}

case "${1:-}" in
  test) shift; cmd_test "$@" ;;
  dev) shift; cmd_dev "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  assets) shift; cmd_assets "$@" ;;
  qemu) shift; cmd_qemu "$@" ;;
  *) cmd_build "$@" ;;
esac
