#!/bin/sh
# Runs the agent from its image (cargo xtask image) on this host, watching the host as the
# packaged service does: podman's equivalent of deploy/kubernetes/daemonset.yaml.
#
#   deploy/podman/boot-copy-agent.sh [AGENT ARGUMENTS]      (default: run)
#
# BOOT_COPY_IMAGE   the image (default localhost/boot-copy-agent:latest)
# BOOT_COPY_LOG_DIR the host directory for the alert log and status file (default
#                   /var/log/boot-copy, the packaged service's)
# BOOT_COPY_PODMAN  more `podman run` options, e.g. "--runtime runc" on a hybrid cgroup host
#                   whose crun refuses it, or "--detach"
set -eu
image=${BOOT_COPY_IMAGE:-localhost/boot-copy-agent:latest}
logs=${BOOT_COPY_LOG_DIR:-/var/log/boot-copy}
mkdir -p "$logs"
chmod 0750 "$logs"

# Files read from the host rather than the image, read-only:
#   /sys/kernel/btf    the kernel's BTF, for the programs' CO-RE relocations
#   /sys/fs/bpf        the host's BPF file system (the agent pins nothing there today)
#   /boot              the strict rule resolves targets against the host's /boot and its mounts
#   /usr/bin/cp, mv    the strict rule's reference binaries (a renamed cp is the same file) and
#                      the kernel's size prefilter (merged /usr, as on Debian 12)
#   /etc/os-release, /etc/machine-id   host.os.* and host.id (and so agent.id, entity ids)
#   /etc/passwd, /etc/group            user and group names
# --pid=host: every process's /proc and the host's pids (the kernel reports those);
# --uts=host: host.name; --network=host: syslog and metrics on the host's loopback;
# --cgroupns=host: /proc/PID/cgroup paths as the host names them.
# Capabilities: those the packaged unit grants (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE; the agent
# drops CAP_PERFMON once attached). podman's default seccomp profile allows bpf(2) and
# perf_event_open(2) only with CAP_SYS_ADMIN, which the agent does not need: it runs without a
# seccomp filter instead. Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK: unlimited there.
memlock=
case $(uname -r) in
[0-4].* | 5.[0-9].* | 5.10.*) memlock=--ulimit=memlock=-1:-1 ;;
esac
ro() { printf -- '--volume=%s:%s:ro\n' "$1" "$1"; }
# shellcheck disable=SC2046,SC2086
exec podman run --rm --replace --name boot-copy-agent \
    --pid=host --uts=host --network=host --cgroupns=host \
    --cap-drop=all --cap-add=CAP_BPF,CAP_PERFMON,CAP_SYS_PTRACE \
    --security-opt=seccomp=unconfined \
    $memlock \
    $(ro /sys/kernel/btf) $(ro /sys/fs/bpf) $(ro /boot) \
    $(ro /usr/bin/cp) $(ro /usr/bin/mv) \
    $(ro /etc/os-release) $(ro /etc/machine-id) $(ro /etc/passwd) $(ro /etc/group) \
    --volume="$logs:/var/log/boot-copy" \
    ${BOOT_COPY_PODMAN:-} \
    "$image" "$@"
