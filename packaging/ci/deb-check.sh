#!/bin/bash
# The Debian package end to end, as root on a fresh Debian 12 (docs/packaging.md):
#   make deb; lintian (no error, no warning that debian/ does not explain);
#   apt-get install ./slips_*.deb; systemd-analyze verify of the installed unit;
#   a smoke test of the installed package without systemd: a private slipsd for
#   `slipsctl analyze capture.pcap` as root, then the unit's ExecStart as user
#   slips in the background, slipsctl status, analyze of a generated Zeek folder
#   and a generated pcap (alerts expected), reload, SIGTERM stops everything;
#   apt-get purge slips, and nothing of the package is left behind.
# It installs and purges the package: run it on a machine of its own (CI).
set -euo pipefail
cd "$(dirname "$0")/../.."

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 SYSTEMD_COLORS=0 SYSTEMD_PAGER=
# Debian's own Python and programs only (no pyenv shim, no virtualenv).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYENV_VERSION

[ "$(id -u)" = 0 ] || { echo "deb-check: run as root (it installs and purges the package)" >&2; exit 1; }

T0=$SECONDS
STEP_T=$SECONDS
TIMINGS=()
PASSED=0
step() {  # a step is a check: the one before it passed when the next one starts
    if [ -n "${STEP_NAME:-}" ]; then
        TIMINGS+=("$(printf '%5ss  %s' $((SECONDS - STEP_T)) "$STEP_NAME")")
        PASSED=$((PASSED + 1))
    fi
    STEP_NAME=$1 STEP_T=$SECONDS
    echo; echo "== deb-check: $1"
}
fail() {
    echo "deb-check: FAILED in '$STEP_NAME': $*" >&2
    exit 1
}

WORK=$(mktemp -d /tmp/deb-check.XXXXXX)
chmod 0755 "$WORK"
DAEMON_PID=""
INSTALLED=""
cleanup() {
    local code=$?
    if [ "$code" != 0 ]; then
        echo "deb-check: step '${STEP_NAME:-}' failed (exit $code)" >&2
        echo "deb-check: $PASSED passed, 1 failed"
    fi
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    rm -f /etc/slips/slips.d/50-deb-check.conf
    if [ -n "$INSTALLED" ]; then  # failed half-way: leave the machine as it was
        echo "deb-check: purging the package again" >&2
        apt-get purge -y -qq slips >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- tools this check needs besides the build's (make deb installs those) -------------
step "tools (lintian, systemd-analyze)"
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if dpkg-query -W -f='${Status}' slips 2>/dev/null | grep -q "installed\|config-files"; then
    fail "the package slips is already on this machine: purge it first (apt-get purge slips)"
fi

# --- build ----------------------------------------------------------------------------
step "make deb"
make deb
VERSION=$(dpkg-parsechangelog -SVersion)
ARCH=$(dpkg --print-architecture)
DEB=build/deb/slips_${VERSION}_${ARCH}.deb
CHANGES=build/deb/slips_${VERSION}_${ARCH}.changes
[ -f "$DEB" ] || fail "$DEB was not built"
[ "${VERSION%%-*}" = "$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" ] \
    || fail "debian/changelog ($VERSION) and pyproject.toml disagree on the version"
dpkg-deb -c "$DEB" | awk '{print $6}' | grep -E '(__pycache__|\.pyc$|/tests/|/test_[^/]*\.py$)' \
    && fail "$DEB ships caches or tests"

# --- lintian --------------------------------------------------------------------------
step "lintian"
# Everything, overridden tags and their reasons (debian/slips.lintian-overrides) too...
lintian -I --pedantic --show-overrides --fail-on none "$CHANGES" 2>&1 | grep -v "^running with root"
# ...and the verdict: no error and no warning that is not overridden there.
lintian --fail-on error,warning "$CHANGES" 2>&1 | grep -v "^running with root" || true
lintian --fail-on error,warning "$CHANGES" >/dev/null 2>&1 \
    || fail "lintian reports errors or unexplained warnings"

# --- install --------------------------------------------------------------------------
step "apt-get install ./$DEB"
ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq
INSTALLED=yes
apt-get install -y -q --no-install-recommends "./$DEB" >"$WORK/apt-install.log" 2>&1 \
    || { cat "$WORK/apt-install.log"; fail "apt-get install"; }
tail -n 3 "$WORK/apt-install.log"
for prog in slipsd slipsctl; do
    [ "$(command -v $prog)" = "/usr/bin/$prog" ] || fail "$prog is not /usr/bin/$prog"
    head -n1 "/usr/bin/$prog" | grep -qx '#! */usr/bin/python3' \
        || fail "/usr/bin/$prog does not run Debian's python3: $(head -n1 /usr/bin/$prog)"
done
getent passwd slips >/dev/null || fail "no user slips"
getent group slips >/dev/null || fail "no group slips"
getent group slips-admin >/dev/null || fail "no group slips-admin"
dpkg-query -W -f='${Conffiles}\n' slips | grep -q " /etc/slips/slips.conf " \
    || fail "/etc/slips/slips.conf is not a conffile"
[ -d /etc/slips/slips.d ] || fail "no /etc/slips/slips.d"
for dir in /var/lib/slips /var/log/slips; do
    [ "$(stat -c %U:%G "$dir")" = slips:slips ] || fail "$dir is not owned by slips"
done
UNIT=/lib/systemd/system/slipsd.service
[ -f "$UNIT" ] || fail "no $UNIT"
[ -L /etc/systemd/system/multi-user.target.wants/slipsd.service ] \
    || fail "slipsd.service is not enabled"
for page in slipsd.8 slipsctl.8 slips.conf.5; do
    [ -f "/usr/share/man/man${page##*.}/$page.gz" ] || fail "no man page $page"
done
[ -d /usr/share/slips/modules ] && [ -f /usr/share/slips/ports.csv ] \
    || fail "modules or data missing from /usr/share/slips"
slipsd --check-config
slipsctl version

# --- the unit -------------------------------------------------------------------------
step "systemd-analyze verify $UNIT"
systemd-analyze verify --man=no --recursive-errors=no "$UNIT" >"$WORK/verify.log" 2>&1 \
    || { cat "$WORK/verify.log"; fail "systemd-analyze verify"; }
cat "$WORK/verify.log"
grep -E "Unknown|Failed|not executable|No such file" "$WORK/verify.log" \
    && fail "systemd-analyze verify complains"
echo "verify: OK"

# --- inputs ---------------------------------------------------------------------------
step "generate a pcap and a Zeek folder"
python3 scripts/make_demo_pcap.py "$WORK/capture.pcap"
python3 scripts/make_demo_sample.py "$WORK/zeek"
chmod -R a+rX "$WORK"

alerts_of() {  # alerts_of JSON: the number of alerts of one analysis (slipsctl --json)
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["summary"]["alerts"] if "summary" in d else d["alerts"])' "$1"
}

# --- out of the box: a private slipsd, no daemon running --------------------------------
step "slipsctl analyze capture.pcap (root, private slipsd: the flowmeter, no Zeek)"
command -v zeek >/dev/null && echo "(zeek is installed here: captures go through zeek)"
(cd "$WORK" && slipsctl analyze capture.pcap -o "$WORK/private-out")
[ -s "$WORK/private-out/alerts.log" ] || fail "private analyze of the pcap: no alerts.log"
grep -q . "$WORK/private-out/alerts.log" || fail "private analyze of the pcap: no alert"

# --- the unit's ExecStart as user slips, without systemd --------------------------------
step "slipsd as user slips (the unit's ExecStart, without systemd)"
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
[ -n "$EXEC" ] || fail "no ExecStart in $UNIT"
# What systemd does for the unit: RuntimeDirectory= (0750), the *_DIRECTORY
# variables, UMask=0027, User=/Group=.
install -d -o slips -g slips -m 0750 /run/slips
as_slips() {
    setpriv --reuid=slips --regid=slips --init-groups --reset-env -- \
        env RUNTIME_DIRECTORY=/run/slips STATE_DIRECTORY=/var/lib/slips \
        LOGS_DIRECTORY=/var/log/slips CONFIGURATION_DIRECTORY=/etc/slips "$@"
}
(umask 0027; cd /; exec setpriv --reuid=slips --regid=slips --init-groups --reset-env -- \
    env RUNTIME_DIRECTORY=/run/slips STATE_DIRECTORY=/var/lib/slips \
    LOGS_DIRECTORY=/var/log/slips CONFIGURATION_DIRECTORY=/etc/slips \
    $EXEC) >"$WORK/slipsd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do
    [ -S /run/slips/slipsd.sock ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/slipsd.log"; fail "slipsd exited"; }
    sleep 0.2
done
[ -S /run/slips/slipsd.sock ] || { cat "$WORK/slipsd.log"; fail "no control socket after 20 s"; }
[ "$(stat -c %U "/proc/$DAEMON_PID")" = slips ] || fail "slipsd does not run as slips"

step "slipsctl status (as slips)"
as_slips slipsctl status
# Users in neither group slips nor slips-admin are kept out (exit 4).
set +e
setpriv --reuid=nobody --regid=nogroup --clear-groups -- slipsctl status >/dev/null 2>&1
code=$?
set -e
[ "$code" = 4 ] || fail "a user outside group slips got exit $code from slipsctl status, not 4"

step "slipsctl analyze (as slips): Zeek folder"
(cd "$WORK" && as_slips slipsctl analyze "$WORK/zeek" --json) >"$WORK/zeek.json"
n=$(alerts_of "$WORK/zeek.json"); echo "alerts: $n"
[ "$n" -gt 0 ] || { cat "$WORK/zeek.json"; fail "no alert from the Zeek folder"; }

step "slipsctl analyze (as slips): pcap"
(cd "$WORK" && as_slips slipsctl analyze "$WORK/capture.pcap" --json) >"$WORK/pcap.json"
n=$(alerts_of "$WORK/pcap.json"); echo "alerts: $n"
[ "$n" -gt 0 ] || { cat "$WORK/pcap.json"; fail "no alert from the pcap"; }
ls /var/lib/slips/output/
as_slips slipsctl runs

step "slipsctl reload (as slips)"
cat >/etc/slips/slips.d/50-deb-check.conf <<'EOF'
[daemon]
log_level = debug
EOF
as_slips slipsctl reload --json | tee "$WORK/reload.json"
grep -q "daemon.log_level" "$WORK/reload.json" || fail "reload did not apply daemon.log_level"
rm -f /etc/slips/slips.d/50-deb-check.conf
as_slips slipsctl reload

step "SIGTERM stops everything"
SLIPS_UID=$(id -u slips)
pgrep -u "$SLIPS_UID" -a || true
kill -TERM "$DAEMON_PID"
for _ in $(seq 1 150); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.2; done
kill -0 "$DAEMON_PID" 2>/dev/null && fail "slipsd still runs 30 s after SIGTERM"
set +e
wait "$DAEMON_PID"
code=$?
set -e
DAEMON_PID=""
echo "slipsd exited with $code"
sleep 1
if pgrep -u "$SLIPS_UID" -a; then fail "processes of user slips are left after SIGTERM"; fi
tail -n 5 "$WORK/slipsd.log"

# --- purge ----------------------------------------------------------------------------
step "apt-get purge slips"
dpkg -L slips >"$WORK/files.txt"
apt-get purge -y -q slips >"$WORK/apt-purge.log" 2>&1 || { cat "$WORK/apt-purge.log"; fail "purge"; }
INSTALLED=""
tail -n 3 "$WORK/apt-purge.log"
if pgrep -u "$SLIPS_UID" -a; then fail "processes of uid $SLIPS_UID are left after purge"; fi
# The package's processes: /usr/bin/slipsd and its children (python3 -m slipsd.child ...),
# root's private daemons (python3 -m slipsd) included; a developer's .venv runs others.
if pgrep -af '^/usr/bin/python3(\.11)? (/usr/bin/slipsd|-m slipsd)'; then
    fail "processes of the package are left after purge"
fi
dpkg-query -W -f='${Status}\n' slips 2>/dev/null | grep -q "installed\|config-files" \
    && fail "dpkg still knows slips after purge"
for name in slips; do getent passwd $name >/dev/null && fail "user $name is left"; done
for name in slips slips-admin; do getent group $name >/dev/null && fail "group $name is left"; done
for path in /etc/slips /var/lib/slips /var/log/slips /run/slips /usr/share/slips /usr/lib/slips \
        /usr/lib/python3/dist-packages/slipsd /usr/lib/python3/dist-packages/slipsctl \
        /lib/systemd/system/slipsd.service /etc/systemd/system/multi-user.target.wants/slipsd.service \
        /var/lib/systemd/deb-systemd-helper-enabled/slipsd.service \
        /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/slipsd.service; do
    [ -e "$path" ] || [ -L "$path" ] && fail "$path is left after purge"
done
while read -r path; do
    [ -d "$path" ] && continue  # directories (and /lib -> usr/lib) are shared
    if [ -e "$path" ] || [ -L "$path" ]; then fail "$path (a file of the package) is left"; fi
done <"$WORK/files.txt"
echo "purge: nothing left"

step done
echo
echo "== deb-check: timings"
printf '%s\n' "${TIMINGS[@]}"
printf '%5ss  total\n' $((SECONDS - T0))
echo "deb-check: OK ($DEB)"
echo "deb-check: $PASSED passed, 0 failed"
