#!/bin/sh
# The scenario set of `cargo xtask vm-test`, run inside each QEMU guest and natively on the host.
#
# Prints one `VMTEST <name> PASS|FAIL|SKIP <seconds>s` line per scenario and a final
# `VMTEST-DONE passed=N failed=M skipped=K`. Needs root and, in the environment:
#   AGENT        the statically linked boot-copy-agent
#   TESTS        the statically linked end-to-end tests as NAME=PATH words, e.g.
#                `events=/…/deps/events-HASH daemon=/…/deps/daemon-HASH` (tests/NAME.rs)
#   SCENARIO_TIMEOUT  seconds one scenario may take (default 180)
#   VMTEST_SET   `all`: every test of each binary (one agent each) instead of the shared set
#   VMTEST_ONLY  optional shell glob: run only the scenarios whose names match it
# Scenarios: agent-loads (the programs load and events flow; on failure the agent's error, with
# any verifier log, is printed in full), requirement-missing-btf (with the kernel BTF hidden the
# agent exits non-zero naming BTF), then the tests of each TESTS binary in $SHARED (or all of
# them), one process each, as scenario NAME/TEST.
: "${AGENT:?AGENT must name the agent binary}"
: "${TESTS:?TESTS must list the test binaries}"
: "${SCENARIO_TIMEOUT:=180}"
work=$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")
passed=0
failed=0
skipped=0

# result NAME PASS|FAIL|SKIP START_EPOCH
result() {
    echo "VMTEST $1 $2 $(($(date +%s) - $3))s"
    case $2 in
    PASS) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    *) skipped=$((skipped + 1)) ;;
    esac
}

# Prints FILE between markers so the agent's own words stand out in the console log.
show() {
    echo "----- $1 -----"
    cat "$2"
    echo "----- end of $1 -----"
}

# The agent starts, stays up and prints exec events for execs made after it started.
agent_loads() {
    out=$work/agent.out
    err=$work/agent.err
    "$AGENT" events --all >"$out" 2>"$err" &
    pid=$!
    tries=0
    while [ $tries -lt 60 ] && kill -0 $pid 2>/dev/null; do
        /bin/true vmtest-agent-loads
        grep -q 'vmtest-agent-loads' "$out" && break
        sleep 0.5
        tries=$((tries + 1))
    done
    if ! kill -0 $pid 2>/dev/null; then
        wait $pid
        echo "agent exited early with status $?"
        show "agent stderr" "$err"
        return 1
    fi
    kill -TERM $pid
    wait $pid
    rc=$?
    if ! grep -q 'vmtest-agent-loads' "$out"; then
        echo "no event for the marker exec within 30 s; first lines of stdout:"
        head -c 4000 "$out"
        show "agent stderr" "$err"
        return 1
    fi
    if [ $rc -ne 0 ]; then
        echo "agent exited with status $rc after SIGTERM"
        show "agent stderr" "$err"
        return 1
    fi
    echo "agent-loads: $(wc -l <"$out") events in $tries polls"
}

# With /sys/kernel/btf hidden (in a private mount namespace) the agent refuses to start and says
# that BTF is what is missing.
requirement_missing_btf() {
    err=$work/nobtf.err
    unshare -m sh -c 'mount -t tmpfs nobtf /sys/kernel/btf && exec timeout 60 "$0" events' \
        "$AGENT" >/dev/null 2>"$err"
    rc=$?
    show "agent stderr without BTF (exit status $rc)" "$err"
    [ $rc -ne 0 ] && grep -q 'BTF' "$err"
}

# test_case BINARY TEST: runs one test; PASS needs exit status 0 and `1 passed`.
test_case() {
    out=$work/test.out
    timeout "$SCENARIO_TIMEOUT" "$1" --exact "$2" --test-threads=1 --nocapture >"$out" 2>&1
    rc=$?
    cat "$out"
    [ $rc -eq 0 ] || return 1
    grep -q 'test result: ok. 1 passed' "$out" && return 0
    return 2
}

scenario() {
    name=$1
    shift
    # shellcheck disable=SC2254 # VMTEST_ONLY is a glob on purpose.
    case $name in
    ${VMTEST_ONLY:-*}) ;;
    *) return ;;
    esac
    echo "VMTEST-START $name"
    start=$(date +%s)
    "$@"
    case $? in
    0) result "$name" PASS "$start" ;;
    2) result "$name" SKIP "$start" ;;
    *) result "$name" FAIL "$start" ;;
    esac
}

# The scenario set: every events scenario, every alert verdict and exception scenario, every
# strict-rule evasion, and the whole-argv and loader scenarios (with the 1 MiB-ring one), each
# suite against one agent (under TCG loading the programs takes about ten seconds per agent).
# VMTEST_SET=all runs every test of the binaries instead, one agent each.
SHARED="events/every_scenario_on_one_agent daemon/alert_scenarios_on_one_agent strict/each_evasion_alerts_once_under_the_strict_rule argv/whole_command_lines_and_the_loader_on_one_agent argv/an_incomplete_argv_alerts_as_args_incomplete"

echo "VMTEST-KERNEL $(uname -r)"
scenario agent-loads agent_loads
loads=$failed
scenario requirement-missing-btf requirement_missing_btf
for entry in $TESTS; do
    suite=${entry%%=*}
    binary=${entry#*=}
    cases=$("$binary" --list 2>/dev/null | sed -n 's/: test$//p')
    [ -n "$cases" ] || { echo "no tests listed by $binary"; result "$suite" FAIL "$(date +%s)"; }
    for t in $cases; do
        if [ "${VMTEST_SET:-}" != all ]; then
            case " $SHARED " in
            *" $suite/$t "*) ;;
            *) continue ;;
            esac
        fi
        if [ "$loads" -ne 0 ] && [ -z "${VMTEST_ONLY:-}" ]; then
            result "$suite/$t" SKIP "$(date +%s)"
        else
            scenario "$suite/$t" test_case "$binary" "$t"
        fi
    done
done
rm -rf "$work"
echo "VMTEST-DONE passed=$passed failed=$failed skipped=$skipped"
