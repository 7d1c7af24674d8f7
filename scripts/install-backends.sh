#!/usr/bin/env bash
# Install the real observability backends used by the cde-otel end-to-end tests:
#   * OpenTelemetry Collector (custom build with ocb from collector-config/builder-config.yaml)
#   * Jaeger v2 (built from its Go module)
#   * Prometheus + promtool (Debian package; the packaged service is stopped and disabled)
#   * ApacheBench `ab` (Debian package apache2-utils): the load generator of bench/bench_health.py
#   * docker-compose (the real Compose v2, built from its Go module) to validate docker-compose.yml;
#     no Docker engine is needed for `docker-compose config`
#
# Everything is installed into a cache OUTSIDE the repository:
#   ${CDE_OTEL_BACKENDS_CACHE:-$HOME/.cache/cde-otel/backends}/<name>-<version>/
# and the binary paths are written to <cache>/backends.env and printed on stdout as
#   CDE_OTEL_OTELCOL_BIN=...  CDE_OTEL_JAEGER_BIN=...  CDE_OTEL_PROMETHEUS_BIN=...  CDE_OTEL_PROMTOOL_BIN=...
#   CDE_OTEL_COMPOSE_BIN=...  CDE_OTEL_AB_BIN=...
#
# Usage:
#   scripts/install-backends.sh              install whatever is missing (idempotent, fast when cached),
#                                            then print the env lines on stdout (progress goes to stderr)
#   scripts/install-backends.sh --print-env  install nothing; print the env lines if every backend is
#                                            present, else name what is missing and exit 3
#
# Needs: bash, go (>= 1.25; built with GOTOOLCHAIN=local), python3, sha256sum, flock, and for
# Prometheus and ab apt-get (as root, or via sudo). Network: only the Go module proxy and Debian's archive.
set -euo pipefail

# ---- versions ------------------------------------------------------------------------------
OCB_VERSION="v0.159.0"          # go.opentelemetry.io/collector/cmd/builder
OTELCOL_VERSION="0.159.0"       # must match the component versions in builder-config.yaml

# Jaeger: the module github.com/jaegertracing/jaeger has no /v2 suffix, so v2.x tags are not
# valid Go module versions; each v2 release needs the pseudo-version of its tagged commit.
#   Wanted: tag v2.20.0 = commit 798e4b0fcf22609e381df764a01461affd813e1e (2026-07-20T03:33:34Z)
#           -> pseudo-version v1.76.1-0.20260720033334-798e4b0fcf22
#   The Go module proxy reachable from this project's machines refuses it (403 "This module
#   version is not available"), as it does every v2.14.0..v2.20.0 pseudo-version and raw commit
#   hashes; its @v/list ends at v1.76.0. So we build the newest resolvable release:
#   module version v1.76.0 = tag v2.13.0 (same commit, 63b27e1810a7; the last release that
#   carried a v1 tag). cmd/jaeger at that version IS the Jaeger v2 (collector-based) binary.
#   To move to v2.20.0 where the proxy serves it, set:
#     JAEGER_MODULE_VERSION=v1.76.1-0.20260720033334-798e4b0fcf22  JAEGER_RELEASE=v2.20.0
#   (and CDE_OTEL_JAEGER_COMMIT=798e4b0fcf22609e381df764a01461affd813e1e for `jaeger version`).
JAEGER_MODULE_VERSION="${CDE_OTEL_JAEGER_MODULE_VERSION:-v1.76.0}"
JAEGER_RELEASE="${CDE_OTEL_JAEGER_RELEASE:-v2.13.0}"
JAEGER_COMMIT="${CDE_OTEL_JAEGER_COMMIT:-63b27e1810a710ac54dc4522da0538e540bdc545}"

# docker compose: only `config` is run (validation of docker-compose.yml, profiles included).
# The module has replace directives, so `go install` refuses it: build ./cmd inside the
# downloaded module instead.
COMPOSE_VERSION="v2.40.3"

# ---- paths ---------------------------------------------------------------------------------
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
BUILDER_CONFIG="${REPO_ROOT}/collector-config/builder-config.yaml"
CACHE="${CDE_OTEL_BACKENDS_CACHE:-${HOME}/.cache/cde-otel/backends}"
ENV_FILE="${CACHE}/backends.env"

log() { printf '[install-backends] %s\n' "$*" >&2; }
die() { printf '[install-backends] ERROR: %s\n' "$*" >&2; exit 1; }

MODE="install"
case "${1:-}" in
  "") ;;
  --print-env) MODE="print" ;;
  -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

[[ -f "${BUILDER_CONFIG}" ]] || die "missing ${BUILDER_CONFIG}"
manifest_hash="$(sha256sum "${BUILDER_CONFIG}" | cut -c1-12)"

OCB_DIR="${CACHE}/ocb-${OCB_VERSION}"
OCB_BIN="${OCB_DIR}/builder"
OTELCOL_DIR="${CACHE}/otelcol-cde-${OTELCOL_VERSION}-${manifest_hash}"
OTELCOL_BIN="${OTELCOL_DIR}/otelcol-cde"
JAEGER_DIR="${CACHE}/jaeger-${JAEGER_RELEASE}-${JAEGER_MODULE_VERSION}"
JAEGER_BIN="${JAEGER_DIR}/jaeger"
COMPOSE_DIR="${CACHE}/docker-compose-${COMPOSE_VERSION}"
COMPOSE_BIN="${COMPOSE_DIR}/docker-compose"

find_prometheus() {
  PROMETHEUS_BIN="$(command -v prometheus || true)"
  PROMTOOL_BIN="$(command -v promtool || true)"
  # /usr/bin may be missing from a minimal PATH
  [[ -n "${PROMETHEUS_BIN}" || ! -x /usr/bin/prometheus ]] || PROMETHEUS_BIN=/usr/bin/prometheus
  [[ -n "${PROMTOOL_BIN}" || ! -x /usr/bin/promtool ]] || PROMTOOL_BIN=/usr/bin/promtool
}

find_ab() {
  AB_BIN="$(command -v ab || true)"
  [[ -n "${AB_BIN}" || ! -x /usr/bin/ab ]] || AB_BIN=/usr/bin/ab
}

print_env() {
  printf 'CDE_OTEL_OTELCOL_BIN=%s\n' "${OTELCOL_BIN}"
  printf 'CDE_OTEL_JAEGER_BIN=%s\n' "${JAEGER_BIN}"
  printf 'CDE_OTEL_PROMETHEUS_BIN=%s\n' "${PROMETHEUS_BIN}"
  printf 'CDE_OTEL_PROMTOOL_BIN=%s\n' "${PROMTOOL_BIN}"
  printf 'CDE_OTEL_COMPOSE_BIN=%s\n' "${COMPOSE_BIN}"
  printf 'CDE_OTEL_AB_BIN=%s\n' "${AB_BIN}"
  printf 'CDE_OTEL_BACKENDS_VERSIONS=otelcol=%s,jaeger=%s+module-%s,prometheus=%s\n' \
    "${OTELCOL_VERSION}" "${JAEGER_RELEASE}" "${JAEGER_MODULE_VERSION}" "${PROMETHEUS_VERSION:-unknown}"
}

prometheus_version() {
  "${PROMETHEUS_BIN}" --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p' | head -n1
}

if [[ "${MODE}" == "print" ]]; then
  find_prometheus
  find_ab
  missing=()
  [[ -x "${OTELCOL_BIN}" ]] || missing+=("otelcol (${OTELCOL_BIN})")
  [[ -x "${JAEGER_BIN}" ]] || missing+=("jaeger (${JAEGER_BIN})")
  [[ -n "${PROMETHEUS_BIN}" ]] || missing+=("prometheus (not on PATH)")
  [[ -n "${PROMTOOL_BIN}" ]] || missing+=("promtool (not on PATH)")
  [[ -x "${COMPOSE_BIN}" ]] || missing+=("docker-compose (${COMPOSE_BIN})")
  [[ -n "${AB_BIN}" ]] || missing+=("ab (apache2-utils, not on PATH)")
  if (( ${#missing[@]} )); then
    printf '[install-backends] missing backends: %s\n' "${missing[*]}" >&2
    printf '[install-backends] run: %s\n' "${SCRIPT_DIR}/install-backends.sh" >&2
    exit 3
  fi
  PROMETHEUS_VERSION="$(prometheus_version)"
  print_env
  exit 0
fi

# ---- install mode --------------------------------------------------------------------------
command -v go >/dev/null || die "go is not on PATH (need Go >= 1.25)"
command -v python3 >/dev/null || die "python3 is not on PATH"
mkdir -p "${CACHE}"

# One installer at a time per cache.
exec 9>"${CACHE}/.lock"
flock 9

# Go settings: never switch toolchains, share the normal module/build caches so reruns are fast,
# static binaries.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false"
unset GOBIN GOOS GOARCH

now() { date +%s; }
TIMINGS=()

tmp_dirs=()
cleanup() { local d; for d in "${tmp_dirs[@]}"; do rm -rf -- "$d"; done; }
trap cleanup EXIT
# mk_tmp NAME: sets TMP to a fresh scratch dir inside the cache (removed on exit).
mk_tmp() { TMP="$(mktemp -d "${CACHE}/.tmp-$1-XXXXXX")"; tmp_dirs+=("${TMP}"); }

install_ocb() {
  if [[ -x "${OCB_BIN}" ]]; then log "ocb ${OCB_VERSION}: cached"; return; fi
  log "ocb ${OCB_VERSION}: go install ..."
  local t0 tmp; t0=$(now); mk_tmp ocb; tmp="${TMP}"
  GOBIN="${tmp}/bin" go install "go.opentelemetry.io/collector/cmd/builder@${OCB_VERSION}"
  rm -rf "${OCB_DIR}"; mkdir -p "${tmp}/final"; mv "${tmp}/bin/builder" "${tmp}/final/builder"
  mv "${tmp}/final" "${OCB_DIR}"
  TIMINGS+=("ocb $(( $(now) - t0 ))s")
}

install_otelcol() {
  if [[ -x "${OTELCOL_BIN}" ]]; then log "otelcol ${OTELCOL_VERSION} (manifest ${manifest_hash}): cached"; return; fi
  install_ocb
  log "otelcol ${OTELCOL_VERSION} (manifest ${manifest_hash}): building with ocb (several minutes) ..."
  local t0 tmp; t0=$(now); mk_tmp otelcol; tmp="${TMP}"
  cp "${BUILDER_CONFIG}" "${tmp}/builder-config.yaml"
  # output_path in the manifest is ./build, relative to the working directory.
  (cd "${tmp}" && "${OCB_BIN}" --config "${tmp}/builder-config.yaml" >"${tmp}/ocb.log" 2>&1) || {
    tail -n 40 "${tmp}/ocb.log" >&2; die "ocb build failed"; }
  [[ -x "${tmp}/build/otelcol-cde" ]] || die "ocb did not produce ${tmp}/build/otelcol-cde"
  mkdir -p "${tmp}/final"
  mv "${tmp}/build/otelcol-cde" "${tmp}/final/otelcol-cde"
  cp "${BUILDER_CONFIG}" "${tmp}/final/builder-config.yaml"
  rm -rf "${OTELCOL_DIR}"; mv "${tmp}/final" "${OTELCOL_DIR}"
  TIMINGS+=("otelcol $(( $(now) - t0 ))s")
}

install_jaeger() {
  if [[ -x "${JAEGER_BIN}" ]]; then log "jaeger ${JAEGER_RELEASE} (${JAEGER_MODULE_VERSION}): cached"; return; fi
  log "jaeger ${JAEGER_RELEASE} (module ${JAEGER_MODULE_VERSION}): building (several minutes) ..."
  local t0 tmp; t0=$(now); mk_tmp jaeger; tmp="${TMP}"
  # `go install pkg@version` refuses modules with replace directives, so build from a throwaway
  # module that requires jaeger and copies jaeger's own replace directives.
  (
    cd "${tmp}"
    printf 'module cde-otel.invalid/jaeger-build\n\ngo 1.25\n' > go.mod
    gomod="$(go mod download -json "github.com/jaegertracing/jaeger@${JAEGER_MODULE_VERSION}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    go mod edit -json "${gomod}" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    new = r["New"]["Path"] + ("@" + r["New"]["Version"] if r["New"].get("Version") else "")
    if not r["New"].get("Version"):
        continue  # local-path replace inside jaeger; not applicable from outside
    print("-replace=" + old + "=" + new)
' > replaces.txt
    if [[ -s replaces.txt ]]; then xargs go mod edit < replaces.txt; fi
    go mod edit -require="github.com/jaegertracing/jaeger@${JAEGER_MODULE_VERSION}"
    go get "github.com/jaegertracing/jaeger/cmd/jaeger@${JAEGER_MODULE_VERSION}" 2>get.log || {
      cat get.log >&2; exit 1; }
    vpkg=github.com/jaegertracing/jaeger/internal/version
    go build -ldflags="-s -w -X ${vpkg}.latestVersion=${JAEGER_RELEASE} -X ${vpkg}.commitSHA=${JAEGER_COMMIT}" \
      -o "${tmp}/final/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  ) || die "jaeger build failed"
  rm -rf "${JAEGER_DIR}"; mv "${tmp}/final" "${JAEGER_DIR}"
  TIMINGS+=("jaeger $(( $(now) - t0 ))s")
}

install_compose() {
  if [[ -x "${COMPOSE_BIN}" ]]; then log "docker-compose ${COMPOSE_VERSION}: cached"; return; fi
  log "docker-compose ${COMPOSE_VERSION}: building from its Go module (several minutes) ..."
  local t0 tmp src; t0=$(now); mk_tmp compose; tmp="${TMP}"
  src="$(go mod download -json "github.com/docker/compose/v2@${COMPOSE_VERSION}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  (cd "${src}" && go build -ldflags="-s -w -X github.com/docker/compose/v2/internal.Version=${COMPOSE_VERSION}" \
    -o "${tmp}/final/docker-compose" ./cmd) || die "docker-compose build failed"
  rm -rf "${COMPOSE_DIR}"; mv "${tmp}/final" "${COMPOSE_DIR}"
  TIMINGS+=("docker-compose $(( $(now) - t0 ))s")
}

as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"; fi
}

install_prometheus() {
  find_prometheus
  if [[ -n "${PROMETHEUS_BIN}" && -n "${PROMTOOL_BIN}" ]]; then log "prometheus: present (${PROMETHEUS_BIN})"; return; fi
  command -v apt-get >/dev/null || die "prometheus not found and apt-get unavailable; install prometheus + promtool"
  log "prometheus: apt-get install prometheus ..."
  local t0; t0=$(now)
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends prometheus >&2; then
    log "prometheus: not installable from the current package lists; running apt-get update"
    as_root apt-get update >&2
    as_root apt-get install -y --no-install-recommends prometheus >&2
  fi
  # We run our own instance on our own ports: stop and disable the packaged service(s).
  local svc
  for svc in prometheus prometheus-node-exporter; do
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
      as_root systemctl stop "${svc}" >/dev/null 2>&1 || true
      as_root systemctl disable "${svc}" >/dev/null 2>&1 || true
    else
      if [[ -x "/etc/init.d/${svc}" ]]; then as_root service "${svc}" stop >/dev/null 2>&1 || true; fi
      command -v update-rc.d >/dev/null && as_root update-rc.d "${svc}" disable >/dev/null 2>&1 || true
      command -v systemctl >/dev/null && as_root systemctl disable "${svc}" >/dev/null 2>&1 || true
    fi
  done
  find_prometheus
  [[ -n "${PROMETHEUS_BIN}" && -n "${PROMTOOL_BIN}" ]] || die "prometheus/promtool still not found after install"
  TIMINGS+=("prometheus $(( $(now) - t0 ))s")
}

install_ab() {
  find_ab
  if [[ -n "${AB_BIN}" ]]; then log "ab: present (${AB_BIN})"; return; fi
  command -v apt-get >/dev/null || die "ab not found and apt-get unavailable; install ApacheBench (apache2-utils)"
  log "ab: apt-get install apache2-utils ..."
  local t0; t0=$(now)
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends apache2-utils >&2; then
    log "ab: not installable from the current package lists; running apt-get update"
    as_root apt-get update >&2
    as_root apt-get install -y --no-install-recommends apache2-utils >&2
  fi
  find_ab
  [[ -n "${AB_BIN}" ]] || die "ab still not found after installing apache2-utils"
  TIMINGS+=("ab $(( $(now) - t0 ))s")
}

t_start=$(now)
install_prometheus
install_ab
install_jaeger
install_otelcol
install_compose
PROMETHEUS_VERSION="$(prometheus_version)"

env_tmp="$(mktemp "${CACHE}/.backends.env.XXXXXX")"
print_env > "${env_tmp}"
chmod 644 "${env_tmp}"
mv "${env_tmp}" "${ENV_FILE}"
log "done in $(( $(now) - t_start ))s${TIMINGS[*]:+ (built: ${TIMINGS[*]})}; env file: ${ENV_FILE}"
cat "${ENV_FILE}"
