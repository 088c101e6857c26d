#!/bin/sh
# The guest side of `cargo xtask service-test`: runs as a systemd service (servicetest.service)
# of a Debian bookworm guest whose PID 1 is systemd, installs the boot-copy-agent package and
# checks what the service does. Prints `SERVICETEST <name> PASS|FAIL [detail]` for every check
# on the console, then `SERVICETEST done`, and powers the guest off.
#
# Alerts are made inside private mount namespaces with a tmpfs over /boot, so the guest's own
# /boot is never touched.

DEB=/root/boot-copy-agent.deb
UNIT=boot-copy-agent.service
LOG=/var/log/boot-copy/alerts.ndjson
# Elastic's published Boot File Copy rule; alerts are matched on `"id":"$RULE"` (rule.id).
RULE=5bda8597-69a6-4b9e-87a2-69a7c963ea83
# Seconds to wait for an alert or a state change (the guest is emulated, and slow).
WAIT=${SERVICETEST_WAIT:-90}

say() { echo "SERVICETEST $*"; }
pass() { say "$1 PASS${2:+ $2}"; }
fail() {
    say "$1 FAIL${2:+ $2}"
    FAILED=1
}
FAILED=0

show() { systemctl show -p "$1" --value "$UNIT"; }

# wait_for SECONDS COMMAND...: true once COMMAND succeeds, false at the deadline.
wait_for() {
    _n=$(($1 * 2))
    shift
    while [ "$_n" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.5
        _n=$((_n - 1))
    done
    return 1
}

# A copy into /boot, in a private mount namespace with a tmpfs over /boot.
copy_to_boot() {
    unshare -m sh -c "mount -t tmpfs bootcopy /boot && cp /etc/hostname /boot/$1"
}

# Lines of the alert log (current file only, or all rotated files too) naming /boot/$1.
alerts_for() { cat "$LOG" 2>/dev/null | grep -F "\"/boot/$1\"" | grep -F "\"id\":\"$RULE\"" | grep -c '"alert"'; }
alerts_all_for() { cat "$LOG"* 2>/dev/null | grep -F "\"/boot/$1\"" | grep -F "\"id\":\"$RULE\"" | grep -c '"alert"'; }
has_alert() { [ "$(alerts_for "$1")" -ge 1 ]; }
in_journal() { journalctl -q -u "$UNIT" -o cat --no-pager | grep -F "\"/boot/$1\"" | grep -qF "\"id\":\"$RULE\""; }
active() { [ "$(show ActiveState)" = active ] && [ "$(show SubState)" = running ]; }
restarted_from() { active && _p=$(show MainPID) && [ "$_p" != 0 ] && [ "$_p" != "$1" ]; }
# A record with event.action ACTION naming TEXT somewhere (e.g. a pid).
record() { grep -F "\"$1\"" "$LOG" 2>/dev/null | grep -qF "$2"; }

say "start kernel $(uname -r), systemd $(systemctl --version | head -n 1 | cut -d' ' -f2)"

# --- a parent that exists before the agent: described from /proc when the agent starts (seeded);
# reading /proc/PID/exe of a root process holding all capabilities needs CAP_SYS_PTRACE.
mkfifo /run/servicetest-go
# The shell forks the subshell that will exec cp now, before the agent starts: that shell is a
# parent the kernel never saw fork, so the agent describes it from its /proc seeding.
unshare -m sh -c 'mount -t tmpfs bootcopy /boot && (read go < /run/servicetest-go && exec cp /etc/hostname /boot/preexisting); exit 0' &
PRE=$!

# --- install
START=$(date +%s.%N)
if dpkg -i "$DEB"; then
    pass install "dpkg -i (including the start) took $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $START }")s"
else
    fail install "dpkg -i failed"
fi

# --- the service: enabled, active, READY (Type=notify: active/running only after READY=1)
if wait_for "$WAIT" active; then
    pass active "$(systemctl show -p ActiveState,SubState,Type,NotifyAccess,MainPID,StatusText "$UNIT" | tr '\n' ' ')"
else
    fail active "$(systemctl show -p ActiveState,SubState,Result,MainPID "$UNIT" | tr '\n' ' ')"
    systemctl status --no-pager "$UNIT"
    journalctl -u "$UNIT" --no-pager | tail -n 40
fi
[ "$(systemctl is-enabled "$UNIT")" = enabled ] && pass enabled || fail enabled "$(systemctl is-enabled "$UNIT")"
if grep -qF agent-started "$LOG"; then
    pass start-record
else
    fail start-record "no agent-started record in $LOG"
fi
# --- the path hooks under the unit: Debian's kernel.perf_event_paranoid=3 refuses kprobes to a
# process without CAP_SYS_ADMIN, which the unit does not grant: the agent runs without them and
# says so in its start record and the journal
PARANOID=$(cat /proc/sys/kernel/perf_event_paranoid)
HOOKS=$(grep -F agent-started "$LOG" | head -n 1 | grep -o '"path_hooks":[a-z]*' | cut -d: -f2)
WARNED=$(journalctl -u "$UNIT" --no-pager 2>/dev/null | grep -c 'not resolved by the kernel: attaching')
if [ "$PARANOID" -ge 3 ] && [ "$HOOKS" = false ] && [ "$WARNED" -ge 1 ]; then
    pass path-hooks "off at perf_event_paranoid=$PARANOID, warned"
elif [ "$PARANOID" -lt 3 ] && [ "$HOOKS" = true ]; then
    pass path-hooks "on at perf_event_paranoid=$PARANOID"
else
    fail path-hooks "path_hooks=${HOOKS:-missing} at perf_event_paranoid=$PARANOID, warnings $WARNED"
fi
ls -ld /var/log/boot-copy "$LOG"
MODES="$(stat -c %a /var/log/boot-copy) $(stat -c %a "$LOG" 2>/dev/null)"
[ "$MODES" = "750 640" ] && pass log-modes "$MODES" || fail log-modes "$MODES (want 750 640)"

# --- the unit: systemd-analyze verify is clean, and the exposure score
OUT=$(systemd-analyze verify --man=no "/lib/systemd/system/$UNIT" 2>&1)
[ -z "$OUT" ] && pass verify || fail verify "$(echo "$OUT" | tr '\n' ' ')"
# The README states the score; the xtask put its figure in /root/readme-exposure.
README_EXPOSURE=$(cat /root/readme-exposure)
SCORE=$(systemd-analyze security "$UNIT" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
systemd-analyze security --no-pager "$UNIT" 2>&1 | grep -F '✗'
if [ -n "$SCORE" ] && [ "$SCORE" = "$README_EXPOSURE" ]; then
    pass exposure "$SCORE"
else
    fail exposure "${SCORE:-unknown} (the README says $README_EXPOSURE)"
fi

# --- capabilities: the unit bounds them to CAP_SYS_PTRACE (19), CAP_PERFMON (38) and CAP_BPF (39);
# once attached the agent keeps only CAP_BPF and CAP_SYS_PTRACE, with no ambient set
PID=$(show MainPID)
cap() { sed -n "s/^$1:\t*//p" "/proc/$PID/status"; }
CAPS="Eff=$(cap CapEff) Prm=$(cap CapPrm) Amb=$(cap CapAmb) Bnd=$(cap CapBnd) NoNewPrivs=$(cap NoNewPrivs)"
WANT="Eff=0000008000080000 Prm=0000008000080000 Amb=0000000000000000 Bnd=000000c000080000 NoNewPrivs=1"
if [ "$CAPS" = "$WANT" ]; then
    pass capabilities "$CAPS uid=$(stat -c %u "/proc/$PID")"
else
    fail capabilities "$CAPS (want $WANT)"
fi

# --- an alert in the log and in the journal
copy_to_boot first
if wait_for "$WAIT" has_alert first; then
    pass alert-log "$(alerts_for first) alert(s) for /boot/first"
else
    fail alert-log "no alert for /boot/first in $LOG"
    tail -n 5 "$LOG"
fi
if wait_for 20 in_journal first; then
    pass alert-journal
else
    fail alert-journal "no alert for /boot/first in journalctl -u $UNIT"
    journalctl -u "$UNIT" --no-pager | tail -n 20
fi

# --- the parent that forked cp's process before the agent started: Elastic's rule needs
# process.parent.executable, which for such a parent comes from /proc (CAP_SYS_PTRACE); without
# it the published rule is blind.
echo go > /run/servicetest-go
wait "$PRE"
if wait_for "$WAIT" has_alert preexisting; then
    LINE=$(grep -F '"/boot/preexisting"' "$LOG" | grep -F "\"id\":\"$RULE\"" | head -n 1)
    SRC=$(echo "$LINE" | grep -o '"source":"[a-z_]*"' | head -n 1)
    if [ "$SRC" = '"source":"proc_seed"' ] && echo "$LINE" | grep -qF '"executable":"/usr/bin/dash"'; then
        pass preexisting-parent "parent /usr/bin/dash, $SRC"
    else
        fail preexisting-parent "parent not described from /proc: $SRC"
    fi
else
    fail preexisting-parent "no alert for a cp forked before the agent started"
fi

# --- kill -9: systemd restarts the agent, which records the gap
OLD=$(show MainPID)
NR0=$(show NRestarts)
kill -9 "$OLD"
if wait_for "$WAIT" restarted_from "$OLD"; then
    pass restart-after-kill "pid $OLD -> $(show MainPID), NRestarts $NR0 -> $(show NRestarts)"
else
    fail restart-after-kill "$(systemctl show -p ActiveState,SubState,MainPID,NRestarts,Result "$UNIT" | tr '\n' ' ')"
fi
if wait_for 20 record previous-run-unclean "\"pid\":$OLD"; then
    pass unclean-record "$(grep -F previous-run-unclean "$LOG" | grep -o '"message":"[^"]*"' | tail -n 1)"
else
    fail unclean-record "no previous-run-unclean record naming pid $OLD"
    tail -n 3 "$LOG"
fi
copy_to_boot after-restart
wait_for "$WAIT" has_alert after-restart && pass alert-after-restart || fail alert-after-restart

# --- logrotate, then reload: alerts made before, during and after the rotation all arrive,
# exactly once, and the new ones land in the new file.
N=12
i=1
while [ $i -le $N ]; do
    copy_to_boot "rot-$i"
    if [ $i -eq 6 ]; then
        logrotate -f /etc/logrotate.d/boot-copy
        systemctl reload "$UNIT"
    fi
    i=$((i + 1))
done
all_rotated_arrived() { [ "$(cat "$LOG"* | grep -F "\"id\":\"$RULE\"" | grep -c '"/boot/rot-')" -ge $N ]; }
wait_for "$WAIT" all_rotated_arrived
LOST=""
DUP=""
i=1
while [ $i -le $N ]; do
    c=$(alerts_all_for "rot-$i")
    [ "$c" -eq 0 ] && LOST="$LOST rot-$i"
    [ "$c" -gt 1 ] && DUP="$DUP rot-$i"
    i=$((i + 1))
done
ls -l /var/log/boot-copy/
if [ -e "$LOG.1" ] && [ -z "$LOST$DUP" ]; then
    pass logrotate-no-loss "$N alerts across $(ls "$LOG"* | tr '\n' ' ')"
else
    fail logrotate-no-loss "lost:${LOST:- none} duplicated:${DUP:- none} rotated file: $(ls "$LOG.1" 2>&1)"
fi
copy_to_boot after-reload
if wait_for "$WAIT" has_alert after-reload && [ "$(grep -cF '"/boot/after-reload"' "$LOG.1")" -eq 0 ]; then
    pass reload-new-file "$(grep -c . "$LOG") lines in the new $LOG"
else
    fail reload-new-file "the alert after the reload is not (only) in the new file"
fi
record rules-reloaded boot-copy && pass reload-record || fail reload-record "no rules-reloaded record"

# --- the packaged configuration leaves rotation to logrotate (one rotator)
if grep -qx 'max_bytes = 0' /etc/boot-copy/config.toml; then
    pass packaged-rotation
else
    fail packaged-rotation "the packaged config does not set [sinks.alert_log] max_bytes = 0"
fi

CONF=/etc/boot-copy/config.toml
cp "$CONF" /root/config.toml.orig
restore_config() {
    cp /root/config.toml.orig "$CONF"
    systemctl reset-failed "$UNIT" 2>/dev/null
    systemctl restart "$UNIT"
    wait_for "$WAIT" active
}

# --- syslog to a stock journald on /dev/log: every alert is one journal entry under the tag
# boot-copy whose MESSAGE is the alert's JSON; an alert with 80 KiB of arguments is trimmed to
# the syslog limit (8 KiB) and says so, the alert log keeps it whole.
sed -i 's/^\[sinks.syslog\]$/[sinks.syslog]\nenabled = true/' "$CONF"
systemctl restart "$UNIT"
wait_for "$WAIT" active
PAD=$(head -c 1000 /dev/zero | tr '\0' s)
BIG=""
i=0
while [ $i -lt 80 ]; do
    BIG="$BIG --suffix=$i$PAD"
    i=$((i + 1))
done
copy_to_boot journald-small
unshare -m sh -c "mount -t tmpfs bootcopy /boot && cp $BIG /etc/hostname /boot/journald-big"
# MESSAGE of each boot-copy entry; --all: journalctl shows fields over 4 KiB as null otherwise.
tagged() { journalctl -q -t boot-copy -o json --all --no-pager | jq -r '.MESSAGE'; }
journal_alert() { tagged | jq -c --arg t "/boot/$1" 'select(.event.kind == "alert" and (.process.args | index($t)))' 2>/dev/null; }
in_tagged() { [ -n "$(journal_alert "$1")" ]; }
if wait_for "$WAIT" in_tagged journald-big && in_tagged journald-small && tagged | jq -e . >/dev/null; then
    N_SMALL=$(journal_alert journald-small | grep -c .)
    N_BIG=$(journal_alert journald-big | grep -c .)
    TRIM=$(journal_alert journald-big | jq -c '.boot_copy.trimmed')
    WHOLE=$(grep -F '"/boot/journald-big"' "$LOG" | grep -F "\"id\":\"$RULE\"" | jq '.process.args | length')
    if [ "$N_SMALL $N_BIG" = "1 1" ] && echo "$TRIM" | grep -qF '"process.args"' && [ "$WHOLE" = 83 ]; then
        pass journald-syslog "1 entry each under boot-copy, trimmed: $TRIM"
    else
        fail journald-syslog "entries small=$N_SMALL big=$N_BIG trimmed=$TRIM whole args=$WHOLE"
    fi
else
    fail journald-syslog "no boot-copy journal entries that are the alerts' JSON"
    journalctl -q -t boot-copy --no-pager | tail -n 3 | cut -c1-300
fi
restore_config

# --- a step of the realtime clock while the agent runs: the next alert's @timestamp and
# event.created follow it within a second
date -s "@$(($(date +%s) + 3600))" >/dev/null
sleep 2
T0=$(date +%s)
copy_to_boot clock-step
T1=$(date +%s)
if wait_for "$WAIT" has_alert clock-step; then
    T2=$(date +%s)
    # The stamps straight from the log with jq (dash's echo would rewrite a line's backslashes),
    # as whole seconds (jq's fromdate takes no fraction).
    STAMPS=$(jq -r --arg p /boot/clock-step --arg r "$RULE" \
        'select(.event.kind == "alert" and .rule.id == $r and ((.process.args // []) | index($p)))
         | [."@timestamp", .event.created] | map(sub("\\.[0-9]+Z$"; "Z") | fromdate) | @tsv' \
        "$LOG" | head -n 1)
    TS=$(printf '%s' "$STAMPS" | cut -f1)
    CR=$(printf '%s' "$STAMPS" | cut -f2)
    if [ "$TS" -ge $((T0 - 1)) ] && [ "$TS" -le $((T1 + 1)) ] && [ "$CR" -ge $((T0 - 1)) ] && [ "$CR" -le $((T2 + 1)) ]; then
        pass clock-step "@timestamp $TS, event.created $CR, copy between $T0 and $T1"
    else
        fail clock-step "@timestamp $TS, event.created $CR; copy between $T0 and $T1, seen at $T2"
    fi
else
    fail clock-step "no alert for /boot/clock-step"
fi

# --- a reload with a bad rule: systemctl reload fails once the agent refused it, and the agent
# keeps its running rules; a reload after the fix succeeds
printf '[rule]\nname = "broken"\n' >/etc/boot-copy/rules/broken.toml
if systemctl reload "$UNIT"; then
    fail reload-refused "systemctl reload returned 0 with a broken rule file"
elif active && record reload-failed broken.toml; then
    pass reload-refused "$(grep -F reload-failed "$LOG" | tail -n 1 | jq -r .message | cut -c1-120)"
else
    fail reload-refused "no reload-failed record naming broken.toml, or the agent stopped"
fi
rm -f /etc/boot-copy/rules/broken.toml
copy_to_boot after-bad-reload
if systemctl reload "$UNIT" && wait_for "$WAIT" has_alert after-bad-reload; then
    pass reload-applied
else
    fail reload-applied "systemctl reload failed after the fix, or the rules stopped alerting"
fi

# --- a bad configuration at start: one try, exit status 78, no restart loop
echo 'no_such_key = 1' >>"$CONF"
NR=$(show NRestarts)
systemctl restart "$UNIT" 2>/dev/null
sleep 8
STATE="$(show ActiveState) $(show ExecMainStatus) restarts=$(show NRestarts)"
if [ "$STATE" = "failed 78 restarts=$NR" ]; then
    pass config-exit-78 "$STATE"
else
    fail config-exit-78 "$STATE (want failed 78 restarts=$NR)"
fi
restore_config

# --- a clean stop: exit 0 and a stop record; the next start records no gap
systemctl stop "$UNIT"
RESULT="$(show Result) $(show ExecMainStatus)"
if [ "$RESULT" = "success 0" ] && grep -qF agent-stopped "$LOG"; then
    pass clean-stop "$RESULT"
else
    fail clean-stop "Result/ExecMainStatus $RESULT"
fi
# Counted once the new run's start record is in (an unclean record would come before it).
UNCLEAN=$(cat "$LOG"* | grep -cF previous-run-unclean)
STARTS=$(cat "$LOG"* | grep -cF '"agent-started"')
started_again() { [ "$(cat "$LOG"* | grep -cF '"agent-started"')" -gt "$STARTS" ]; }
systemctl start "$UNIT"
if ! wait_for "$WAIT" started_again; then
    fail clean-restart "no start record after systemctl start"
elif [ "$(cat "$LOG"* | grep -cF previous-run-unclean)" -ne "$UNCLEAN" ]; then
    fail clean-restart "an unclean record after a clean stop"
else
    pass clean-restart
fi

# --- the README's drop-in for the path hooks: with CAP_SYS_ADMIN the unit attaches them, and the
# agent still keeps only CAP_BPF and CAP_SYS_PTRACE once they are attached
DROPIN="/etc/systemd/system/$UNIT.d"
mkdir -p "$DROPIN"
printf '[Service]\nCapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_PTRACE CAP_SYS_ADMIN\nAmbientCapabilities=CAP_BPF CAP_PERFMON CAP_SYS_PTRACE CAP_SYS_ADMIN\n' \
    > "$DROPIN/path-hooks.conf"
STARTS=$(cat "$LOG"* | grep -cF '"agent-started"')
systemctl daemon-reload
systemctl restart "$UNIT"
if wait_for "$WAIT" started_again; then
    HOOKS=$(grep -F agent-started "$LOG" | tail -n 1 | grep -o '"path_hooks":[a-z]*' | cut -d: -f2)
    PID=$(show MainPID)
    EFF=$(cap CapEff)
    if [ "$HOOKS" = true ] && [ "$EFF" = 0000008000080000 ]; then
        pass path-hooks-dropin "path_hooks=$HOOKS CapEff=$EFF"
    else
        fail path-hooks-dropin "path_hooks=${HOOKS:-missing} CapEff=$EFF"
    fi
else
    fail path-hooks-dropin "no start record after the restart"
fi
rm -r "$DROPIN"
systemctl daemon-reload
STARTS=$(cat "$LOG"* | grep -cF '"agent-started"')
systemctl restart "$UNIT"
wait_for "$WAIT" started_again || echo "the agent did not start again without the drop-in"

# --- not checks: what the agent said on stderr (JSON lines are its records), and boot timing
echo "agent diagnostics (journal, non-record lines):"
journalctl -q -u "$UNIT" -o cat --no-pager | grep -v '^{' | tail -n 20
systemd-analyze time 2>&1 | head -n 1

# --- an upgrade (the same package again) restarts the service
OLD=$(show MainPID)
if dpkg -i "$DEB" && wait_for "$WAIT" restarted_from "$OLD"; then
    pass upgrade-restarts "pid $OLD -> $(show MainPID)"
else
    fail upgrade-restarts "$(systemctl show -p ActiveState,MainPID "$UNIT" | tr '\n' ' ')"
fi

# --- removal stops and disables the service; config and logs stay
PID=$(show MainPID)
apt-get remove -y -q boot-copy-agent
stopped() { ! [ -e "/proc/$PID" ] && [ "$(show ActiveState)" != active ]; }
if wait_for 30 stopped && [ ! -e /usr/bin/boot-copy-agent ]; then
    pass remove-stops "ActiveState=$(show ActiveState) LoadState=$(show LoadState)"
else
    fail remove-stops "agent pid $PID still there, or ActiveState=$(show ActiveState)"
fi
WANTS=/etc/systemd/system/multi-user.target.wants/$UNIT
if [ ! -e "$WANTS" ] && [ ! -L "$WANTS" ]; then pass remove-disables; else fail remove-disables "$WANTS remains"; fi
if [ -e /etc/boot-copy/config.toml ] && [ -e "$LOG" ]; then
    pass remove-keeps-config
else
    fail remove-keeps-config "config or logs gone after remove"
fi

# --- purge removes configuration and logs
dpkg --purge boot-copy-agent
if [ ! -e /etc/boot-copy ] && [ ! -e /var/log/boot-copy ] && ! dpkg -s boot-copy-agent >/dev/null 2>&1; then
    pass purge
else
    fail purge "left: $(ls -d /etc/boot-copy /var/log/boot-copy 2>/dev/null | tr '\n' ' ')"
fi

say "done failed=$FAILED"

# Results are on the console; nothing in the guest needs a clean shutdown.
sleep 1
systemctl poweroff -ff
