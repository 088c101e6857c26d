#!/bin/sh
# The scenario set of `cargo xtask vm-test`, run inside each QEMU guest and natively on the host.
#
# Prints one `VMTEST <name> PASS|FAIL|SKIP <seconds>s` line per scenario and a final
# `VMTEST-DONE passed=N failed=M skipped=K`; the xtask checks the lines against the scenarios it
# required. Needs root and, in the environment:
#   AGENT        the statically linked boot-copy-agent
#   TESTS        the statically linked end-to-end test binary (tests/tests.rs)
#   SCENARIOS    the scenarios to run, in order (the xtask's required list)
#   SCENARIO_TIMEOUT  seconds one scenario may take (default 300: the overflow storm alone takes about 90 s under TCG)
# Scenarios: agent-loads (the programs load and events flow; on failure the agent's error, with
# any verifier log, is printed in full), requirement-missing-btf (with the kernel BTF hidden the
# agent exits non-zero naming BTF), and MODULE/TEST: the test MODULE::TEST of $TESTS, one process
# each. After a failed agent-loads the tests are reported as SKIP (which fails the kernel too).
: "${AGENT:?AGENT must name the agent binary}"
: "${TESTS:?TESTS must name the test binary}"
: "${SCENARIOS:?SCENARIOS must list the scenarios}"
: "${SCENARIO_TIMEOUT:=300}"
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

# test_case TEST: runs one test of $TESTS; PASS needs exit status 0 and `1 passed` (a name the
# binary does not have runs nothing, and fails).
test_case() {
    out=$work/test.out
    timeout "$SCENARIO_TIMEOUT" "$TESTS" --exact "$1" --test-threads=1 --nocapture >"$out" 2>&1
    rc=$?
    cat "$out"
    [ $rc -eq 0 ] && grep -q 'test result: ok. 1 passed' "$out"
}

scenario() {
    name=$1
    shift
    echo "VMTEST-START $name"
    start=$(date +%s)
    if "$@"; then
        result "$name" PASS "$start"
    else
        result "$name" FAIL "$start"
    fi
}

echo "VMTEST-KERNEL $(uname -r)"
loads=0
for name in $SCENARIOS; do
    case $name in
    agent-loads)
        scenario "$name" agent_loads
        loads=$failed
        ;;
    requirement-missing-btf) scenario "$name" requirement_missing_btf ;;
    */*)
        if [ "$loads" -ne 0 ]; then
            result "$name" SKIP "$(date +%s)"
        else
            scenario "$name" test_case "$(echo "$name" | sed 's|/|::|g')"
        fi
        ;;
    *) result "$name" FAIL "$(date +%s)" ;;
    esac
done
rm -rf "$work"
echo "VMTEST-DONE passed=$passed failed=$failed skipped=$skipped"
