#!/bin/sh
# Tests of guest/recontext-apply (POSIX sh). Run it with the shell to test; the companion runs
# under the same shell:
#
#   bash guest/tests/run.sh          dash guest/tests/run.sh          busybox sh guest/tests/run.sh
#   guest/tests/run.sh first_apply hook_timeout      (only these tests)
#
# Under busybox, the companion also gets busybox's tools first in PATH (timeout, cp, dd, mount,
# and no flock: the mkdir lock), as in a busybox guest. Environment:
#   RECONTEXT_TEST_SHELL           the shell running the companion (default: the one running this)
#   RECONTEXT_TEST_BUSYBOX_TOOLS   1/0: busybox's applets first in PATH (default: 1 under busybox)
#   RECONTEXTD_BINARY              recontextd, to build ISO images with `build-iso` (default: the
#                                  repository's .build/*/debug/recontextd; else genisoimage)
#   RECONTEXTD_REQUIRE_REAL_TESTS  1: a test that needs root and loop devices fails instead of skipping
# Exit status 0 when every test passed; the log of a failed test is printed.

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
APPLY="$HERE/../recontext-apply"
. "$HERE/lib.sh"
. "$HERE/channel-tests.sh"

# The shell running this script: the companion runs under the same one.
if [ -z "$RECONTEXT_TEST_SHELL" ]; then
    if [ -n "$BASH_VERSION" ]; then
        RECONTEXT_TEST_SHELL=bash
    else
        case "$(readlink /proc/$$/exe 2>/dev/null)" in
            *busybox*) RECONTEXT_TEST_SHELL="busybox sh" ;;
            *dash*) RECONTEXT_TEST_SHELL=dash ;;
            *) RECONTEXT_TEST_SHELL=sh ;;
        esac
    fi
fi
TEST_SHELL=$RECONTEXT_TEST_SHELL
if [ -z "$RECONTEXTD_BINARY" ]; then
    for candidate in "$REPO"/.build/*/debug/recontextd "$REPO"/.build/debug/recontextd; do
        [ -x "$candidate" ] && RECONTEXTD_BINARY=$candidate && break
    done
fi
export RECONTEXTD_BINARY

# A parent that hands over a signal mask blocking SIGTERM or SIGCHLD (Foundation's Process from a
# dispatch thread does) makes `wait` hang in busybox ash and TERM never arrive: say so, fast.
# Read with the shell's own `read`: a command substitution runs while bash blocks SIGCHLD and
# friends for a moment, and under load the check then saw that mask instead of ours.
blocked=""
if [ -r /proc/$$/status ]; then
    while IFS= read -r status_line; do
        case "$status_line" in SigBlk:*) blocked=${status_line#SigBlk:} ;; esac
    done </proc/$$/status
    blocked=${blocked#"${blocked%%[!	 ]*}"}
fi
if [ -n "$blocked" ] && [ $((0x${blocked#"${blocked%?????}"} & 0x14000)) -ne 0 ]; then
    echo "run.sh: started with SIGTERM or SIGCHLD blocked (SigBlk $blocked): start it from a process with a clean signal mask" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/recontext-guest-tests.XXXXXX")
# Each test runs in a subshell that stops what it started (finish_test); then finish unmounts what
# a killed companion may have left mounted and removes the files.
STARTED_PIDS=""
LOOP_DEVICES=""
finish_test() {
    for pid in $STARTED_PIDS; do kill "$pid" 2>/dev/null; kill -TERM "-$pid" 2>/dev/null; done
    for loop in $LOOP_DEVICES; do losetup -d "$loop" 2>/dev/null; done
}
finish() {
    grep -h ' on .*recontext-guest-tests' /proc/mounts 2>/dev/null | while read -r _ mountpoint _; do
        umount "$mountpoint" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap finish EXIT
trap 'exit 130' INT TERM

HOST_PATH=$PATH
if [ "${RECONTEXT_TEST_BUSYBOX_TOOLS:-$(case "$TEST_SHELL" in *busybox*) echo 1 ;; *) echo 0 ;; esac)}" = 1 ]; then
    mkdir -p "$WORK/busybox-bin"
    for applet in $(busybox --list); do ln -s "$(command -v busybox)" "$WORK/busybox-bin/$applet"; done
    PATH="$WORK/busybox-bin:$PATH"
    TOOLS=busybox
else
    TOOLS=system
fi
export PATH

# What a test needs that the machine may lack (printed, or nothing).
skip_reason() {
    case "$1" in
        iso_images | mount_retry)
            command -v xorriso >/dev/null 2>&1 || echo "needs xorriso (to read ISO images without mounting)"
            ;;
        channel_port_discovery)
            [ "$(id -u)" = 0 ] || echo "needs root (mknod)"
            command -v setsid >/dev/null 2>&1 || echo "needs setsid"
            ;;
        channel_*)
            command -v setsid >/dev/null 2>&1 || echo "needs setsid"
            ;;
        watch)
            command -v xorriso >/dev/null 2>&1 || echo "needs xorriso (to read ISO images without mounting)"
            command -v setsid >/dev/null 2>&1 || echo "needs setsid"
            ;;
        packages)
            for tool in make dpkg-deb tar; do
                command -v $tool >/dev/null 2>&1 || echo "needs $tool"
            done
            ;;
        loop_mount)
            if [ "$(id -u)" != 0 ]; then
                echo "needs root (loop devices, mount)"
            elif ! command -v losetup >/dev/null 2>&1 || [ ! -e /dev/loop-control ]; then
                echo "needs losetup and /dev/loop-control"
            elif ! grep -qw iso9660 /proc/filesystems && ! modprobe isofs 2>/dev/null; then
                # Not a missing package: some hosts' kernels have no iso9660 at all (the machine
                # this was written on). A skip even under RECONTEXTD_REQUIRE_REAL_TESTS=1; the guest
                # kernels of the real-guest tests mount it.
                echo "always-skip: this kernel cannot mount iso9660 (not in /proc/filesystems, no module)"
            fi
            ;;
    esac
}

# MARK: - Tests

test_first_apply() {
    use_disc d1 1 hv-a
    hook 10-env 'env | grep "^RECONTEXT_" | sort >"$TEST_DIR/env"'
    companion --trigger media-change || fail "exit status $?"
    expect_eq generation "$(applied generation)" 1
    expect_eq host "$(applied host)" hv-a
    expect_eq result "$(applied result)" ok
    expect_eq hooks "$(applied hooks)" 10-env:ok
    expect_eq format "$(applied format)" nocloud
    expect_eq trigger "$(applied trigger)" media-change
    h12=$(hash_of "nocloud/hv-a/endpoint=http://monitor-hv-a.example:9090" | cut -c1-12)
    expect_eq current "$(readlink "$RECONTEXT_RUN_DIR/current")" "gen-1-$h12"
    expect_eq copied "$(cat "$RECONTEXT_RUN_DIR/current/etc/monitoring.conf")" "endpoint=http://monitor-hv-a.example:9090"
    expect_eq "user-data mode" "$(stat -c %a "$RECONTEXT_RUN_DIR/current/user-data")" 600
    expect_eq "copy's mode" "$(stat -c %a "$RECONTEXT_RUN_DIR/current/")" 700
    expect_eq "run directory's mode" "$(stat -c %a "$RECONTEXT_RUN_DIR")" 700
    [ -e "$RECONTEXT_RUN_DIR/previous" ] && fail "previous exists after the first apply"
    expect_line "$T/env" RECONTEXT_GENERATION=1
    expect_line "$T/env" RECONTEXT_HOST=hv-a
    expect_line "$T/env" RECONTEXT_PREVIOUS_HOST=
    expect_line "$T/env" RECONTEXT_FORMAT=nocloud
    expect_line "$T/env" RECONTEXT_TRIGGER=media-change
    expect_line "$T/env" "RECONTEXT_DIR=$RECONTEXT_RUN_DIR/gen-1-$h12"
    expect_line "$T/env" "RECONTEXT_CONTENT_HASH=$(applied content_hash)"
    expect_line "$T/env" RECONTEXT_DOMAIN_UUID=6f1e2c3a-0000-4000-8000-00000000a001
    expect_eq ack "$(without_ms "$RECONTEXT_RUN_DIR/ack")" \
        "applied 1 result=ok hash=$(applied content_hash) host=hv-a trigger=media-change hooks=10-env:ok"
    grep -q ' ms=[0-9][0-9]*$' "$RECONTEXT_RUN_DIR/ack" || fail "no ms= in the ack: $(cat "$RECONTEXT_RUN_DIR/ack")"
    expect_eq "apply_ms" "$(applied apply_ms | tr -d 0-9)" ""
}

# The units' mode: stderr is the journal; the priority is sd-daemon's "<N>" prefix, nothing else.
test_journal_log() {
    use_disc d1 1 hv-a
    hook 10-fails 'exit 3'
    RECONTEXT_LOG=journal companion --trigger media-change || fail "exit status $?"
    expect_line "$T/log" "<5>generation 1 ($(applied content_hash | cut -c1-12)) from hv-a in $(applied dir) (trigger media-change, previous host none)"
    # The seconds are the clock's whole seconds at start and end: 1 when a second boundary falls in
    # between (seen in CI under load).
    grep -q '^<4>hook 10-fails failed:3 after [01] s' "$T/log" || fail "no <4> line for the failing hook: $(cat "$T/log")"
    expect_line "$T/log" "<5>applied generation 1: hooks-failed (10-fails:failed:3)"
    grep -v '^<[0-7]>' "$T/log" && fail "a line without a priority prefix"
    return 0
}

test_same_generation_twice() {
    use_disc d1 1 hv-a
    counting_hook
    companion --trigger media-change || fail "first run: exit status $?"
    companion --trigger media-change || fail "second run: exit status $?"
    companion --trigger notify --generation 1 || fail "notify: exit status $?"
    expect_eq "hook runs" "$(count_lines "$T/runs")" 1
    grep -q 'generation 1 .* already applied (trigger notify)' "$T/log" || fail "no 'already applied' in the log"
    companion --force || fail "forced run: exit status $?"
    expect_eq "hook runs after --force" "$(count_lines "$T/runs")" 2
    # The forced copy (its name taken by the current one) replaced it: one directory, complete.
    expect_eq "directories after --force" "$(cd "$RECONTEXT_RUN_DIR" && ls -d gen-* .fetch.* 2>/dev/null | tr '\n' ' ')" \
        "$(readlink "$RECONTEXT_RUN_DIR/current") "
    expect_eq "copied after --force" "$(cat "$RECONTEXT_RUN_DIR/current/etc/monitoring.conf")" "endpoint=http://monitor-hv-a.example:9090"
}

test_new_generation() {
    hook 10-env 'echo "$RECONTEXT_GENERATION $RECONTEXT_HOST previous=$RECONTEXT_PREVIOUS_HOST" >>"$TEST_DIR/runs"'
    use_disc d1 1 hv-a
    companion || fail "generation 1: exit status $?"
    first=$(readlink "$RECONTEXT_RUN_DIR/current")
    use_disc d2 2 hv-b
    companion || fail "generation 2: exit status $?"
    second=$(readlink "$RECONTEXT_RUN_DIR/current")
    expect_eq previous "$(readlink "$RECONTEXT_RUN_DIR/previous")" "$first"
    expect_eq "previous_host" "$(applied previous_host)" hv-a
    expect_eq "new endpoint" "$(cat "$RECONTEXT_RUN_DIR/current/etc/monitoring.conf")" "endpoint=http://monitor-hv-b.example:9090"
    use_disc d3 3 hv-a
    companion || fail "generation 3: exit status $?"
    expect_eq "previous after 3" "$(readlink "$RECONTEXT_RUN_DIR/previous")" "$second"
    [ -d "$RECONTEXT_RUN_DIR/$first" ] && fail "generation 1 was not pruned"
    expect_eq "generation directories" "$(ls -d "$RECONTEXT_RUN_DIR"/gen-* | wc -l | tr -d ' ')" 2
    expect_eq runs "$(tr '\n' '|' <"$T/runs")" "1 hv-a previous=|2 hv-b previous=hv-a|3 hv-a previous=hv-b|"
}

# The one case where recontextd repeats a generation number: same number, another host and hash.
test_same_number_other_hash() {
    counting_hook
    use_disc d1 2 hv-b
    companion || fail "exit status $?"
    use_disc d2 2 hv-c
    companion || fail "exit status $?"
    expect_eq runs "$(tr '\n' '|' <"$T/runs")" "2 hv-b|2 hv-c|"
}

test_failing_hook() {
    use_disc d1 1 hv-a
    hook 10-first 'echo first >>"$TEST_DIR/ran"'
    hook 20-fails 'echo "something broke" >&2; exit 3'
    hook 30-last 'echo last >>"$TEST_DIR/ran"'
    printf '#!/bin/sh\necho no >>"$TEST_DIR/ran"\n' >"$RECONTEXT_HOOKS_DIR/40-not-executable"
    hook 50-old.dpkg-old 'echo dpkg-old >>"$TEST_DIR/ran"'
    hook .hidden 'echo hidden >>"$TEST_DIR/ran"'
    companion || fail "exit status $? (hook failures are reported, not an error)"
    expect_eq ran "$(tr '\n' ' ' <"$T/ran")" "first last "
    expect_eq result "$(applied result)" hooks-failed
    expect_eq hooks "$(applied hooks)" "10-first:ok 20-fails:failed:3 30-last:ok"
    expect_eq hook.20-fails "$(applied hook.20-fails)" failed:3
    grep -q 'hook 20-fails failed:3 .*something broke' "$T/log" || fail "the failure is not in the log"
    expect_eq ack "$(without_ms "$RECONTEXT_RUN_DIR/ack" | sed 's/.*hooks=//')" "10-first:ok,20-fails:failed:3,30-last:ok"
}

test_hook_timeout() {
    use_disc d1 1 hv-a
    hook 10-slow 'sleep 30'
    hook 20-stubborn 'trap "" TERM; sleep 30'
    hook 30-after 'echo after >>"$TEST_DIR/ran"'
    started=$(date +%s)
    RECONTEXT_HOOK_TIMEOUT=1 RECONTEXT_HOOK_KILL_AFTER=1 companion || fail "exit status $?"
    elapsed=$(($(date +%s) - started))
    [ "$elapsed" -lt 15 ] || fail "took $elapsed s"
    expect_eq hooks "$(applied hooks)" "10-slow:timeout 20-stubborn:timeout 30-after:ok"
    expect_eq ran "$(cat "$T/ran" 2>/dev/null)" after
}

# start_blocked: generation 1 in the drive, applied in the background with its hook blocked until
# $T/release appears; sets first (its pid).
start_blocked() {
    use_disc d1 1 hv-a
    blocking_hook
    companion --trigger media-change &
    first=$!
    STARTED_PIDS="$STARTED_PIDS $first"
    wait_for 20 test -e "$T/started"
}

# Two invocations while one holds the lock (a udev double event, or notify + media change).
concurrent_case() {
    start_blocked || return
    companion --trigger media-change || fail "second: exit status $?"
    companion --trigger notify --generation 1 || fail "notify: exit status $?"
    : >"$T/release"
    wait "$first" || fail "first: exit status $?"
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|"
    # Two started at the same instant: one apply.
    use_disc d2 2 hv-b
    rm -f "$T/started"
    companion --trigger media-change &
    a=$!
    companion --trigger media-change &
    b=$!
    STARTED_PIDS="$STARTED_PIDS $a $b"
    wait "$a" || fail "a: exit status $?"
    wait "$b" || fail "b: exit status $?"
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|2 hv-b|"
}

test_concurrent_flock() {
    if ! command -v flock >/dev/null 2>&1; then
        echo "    (no flock in PATH: the mkdir lock is tested instead)"
    fi
    concurrent_case
}

test_concurrent_mkdir_lock() {
    RECONTEXT_NO_FLOCK=1
    export RECONTEXT_NO_FLOCK
    concurrent_case
}

test_stale_mkdir_lock() {
    use_disc d1 1 hv-a
    counting_hook
    RECONTEXT_NO_FLOCK=1
    export RECONTEXT_NO_FLOCK
    $TEST_SHELL -c 'exit 0' &
    dead=$!
    wait "$dead"
    mkdir -p "$RECONTEXT_RUN_DIR/lock.d"
    echo "$dead" >"$RECONTEXT_RUN_DIR/lock.d/pid"
    companion || fail "exit status $?"
    expect_eq "hook runs" "$(count_lines "$T/runs")" 1
    grep -q "stale lock of process $dead" "$T/log" || fail "no stale-lock line in the log"
    [ -e "$RECONTEXT_RUN_DIR/lock.d" ] && fail "the lock is still held"
}

# A new disc while hooks run, announced by a second event: applied right after.
test_new_generation_during_hook() {
    start_blocked || return
    use_disc d2 2 hv-b
    companion --trigger media-change || fail "second: exit status $?"
    : >"$T/release"
    wait "$first" || fail "first: exit status $?"
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|2 hv-b|"
    expect_eq generation "$(applied generation)" 2
    expect_eq previous "$(readlink "$RECONTEXT_RUN_DIR/previous")" "gen-1-$(hash_of "nocloud/hv-a/endpoint=http://monitor-hv-a.example:9090" | cut -c1-12)"
}

# The same with no second event (systemd merged the start into the running job): the re-check.
test_new_generation_during_hook_no_event() {
    start_blocked || return
    use_disc d2 2 hv-b
    : >"$T/release"
    wait "$first" || fail "first: exit status $?"
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|2 hv-b|"
    expect_eq trigger "$(applied trigger)" recheck
}

# The channel's entry point: the drive shows the announced generation a little later.
test_notify_waits_for_generation() {
    counting_hook
    use_disc d1 1 hv-a
    companion || fail "exit status $?"
    : >"$T/port"
    RECONTEXT_ACK_PORT="$T/port" RECONTEXT_NOTIFY_WAIT=20 companion --trigger notify --generation 2 &
    notify=$!
    STARTED_PIDS="$STARTED_PIDS $notify"
    wait_for 10 grep -q . "$T/log"
    use_disc d2 2 hv-b
    wait "$notify" || fail "notify: exit status $?"
    expect_eq generation "$(applied generation)" 2
    expect_eq trigger "$(applied trigger)" notify
    expect_eq "hook runs" "$(count_lines "$T/runs")" 2
    RECONTEXT_ACK_PORT="$T/port" companion --trigger notify --generation 2 || fail "repeat: exit status $?"
    expect_eq "ack lines" "$(count_lines "$T/port")" 2
    expect_eq "ack" "$(tail -n 1 "$T/port" | without_ms)" \
        "applied 2 result=ok hash=$(applied content_hash) host=hv-b trigger=notify hooks=10-count:ok"
}

test_notify_gives_up() {
    use_disc d1 1 hv-a
    companion || fail "exit status $?"
    started=$(date +%s)
    RECONTEXT_NOTIFY_WAIT=1 companion --trigger notify --generation 7 || fail "exit status $?"
    [ $(($(date +%s) - started)) -lt 10 ] || fail "waited too long"
    grep -q 'shows generation 1, not 7' "$T/log" || fail "no warning in the log"
    expect_eq generation "$(applied generation)" 1
}

# RECONTEXT_ACK_FD (how recontext-channel hands over its port): the ack goes there as
# "recontext/1 applied ..." once per run, and the status says what became of it: 0 sent, 1 not
# applied (nothing written). No re-read of the disc after a notify's apply.
test_ack_fd() {
    counting_hook
    use_disc d1 1 hv-a
    RECONTEXT_ACK_FD=5 companion --trigger notify --generation 1 5>>"$T/fd"
    expect_eq status $? 0
    expect_eq "fd" "$(without_ms "$T/fd")" \
        "recontext/1 applied 1 result=ok hash=$(applied content_hash) host=hv-a trigger=notify hooks=10-count:ok"
    expect_eq "ack file" "recontext/1 $(cat "$RECONTEXT_RUN_DIR/ack")" "$(cat "$T/fd")"
    grep -q 'trigger recheck' "$T/log" && fail "the disc was read again after the notify's apply"
    RECONTEXT_ACK_FD=5 companion --trigger notify --generation 1 5>>"$T/fd"
    expect_eq "status, applied already" $? 0
    expect_eq "fd lines" "$(count_lines "$T/fd")" 2
    expect_eq "hook runs" "$(count_lines "$T/runs")" 1
    use_disc d2 2 hv-b
    rm "$T/d2/recontext/generation.json"
    RECONTEXT_ACK_FD=5 RECONTEXT_NOTIFY_WAIT=1 companion --trigger notify --generation 2 5>>"$T/fd"
    expect_eq "status, not applied" $? 1
    expect_eq "fd lines" "$(count_lines "$T/fd")" 2
}

# RECONTEXT_ACK_FD while another run holds the lock: status 75, nothing written; that run applies.
test_ack_fd_other_holder() {
    start_blocked || return
    RECONTEXT_ACK_FD=5 companion --trigger notify --generation 1 5>>"$T/fd"
    expect_eq status $? 75
    expect_eq "fd lines" "$(count_lines "$T/fd")" 0
    : >"$T/release"
    wait "$first" || fail "first: exit status $?"
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|"
}

# The record's time (computed from /proc's boot time and uptime, without date) is the clock's.
test_record_time() {
    use_disc d1 1 hv-a
    before=$(date -u +%s)
    companion || fail "exit status $?"
    after=$(date -u +%s)
    recorded=$(/bin/date -u -d "$(applied time | tr T ' ' | tr -d Z)" +%s) || { fail "time: $(applied time)"; return; }
    [ "$recorded" -ge $((before - 2)) ] && [ "$recorded" -le $((after + 2)) ] ||
        fail "time $(applied time) ($recorded) is not between $before and $after"
}

test_bad_record() {
    use_disc d1 1 'hv-a;reboot'
    companion
    expect_eq "exit status (bad host)" "$?" 1
    [ -e "$RECONTEXT_RUN_DIR/current" ] && fail "a bad record was applied"
    grep -q "host 'hv-a;reboot' is not a host name" "$T/log" || fail "the log does not say why"
    use_disc d2 1 hv-a
    rm "$T/d2/recontext/generation.json"
    companion
    expect_eq "exit status (no record)" "$?" 1
    [ -e "$RECONTEXT_RUN_DIR/applied" ] && fail "a disc without a record was applied"
    ls "$RECONTEXT_RUN_DIR" | grep -q fetch && fail "a staging directory was left"
    return 0
}

test_format_from_volume_id() {
    use_disc d1 1 hv-a opennebula
    sed -i '/"format"/d' "$T/d1/recontext/context.json"
    RECONTEXT_VOLUME_ID=CONTEXT companion || fail "exit status $?"
    expect_eq format "$(applied format)" opennebula
}

# MARK: - With ISO images

# ISO images read through RECONTEXT_MOUNT_CMD=iso-extract (xorriso; no root, no iso9660 in the
# kernel needed): the volume id from the descriptor, formats, modes, retries and --watch.
use_extract() {
    unset RECONTEXT_SOURCE_DIR
    RECONTEXT_MOUNT_CMD="$HERE/iso-extract"
    RECONTEXT_UMOUNT_CMD="$HERE/iso-extract --remove"
    export RECONTEXT_MOUNT_CMD RECONTEXT_UMOUNT_CMD
}

test_iso_images() {
    use_extract
    counting_hook
    make_disc "$T/d1" 1 hv-a
    build_iso "$T/d1" cidata "$T/one.iso" || { fail "cannot build an image"; return; }
    RECONTEXT_DEVICE="$T/one.iso" companion --trigger media-change || fail "exit status $?"
    expect_eq generation "$(applied generation)" 1
    expect_eq volume_id "$(applied volume_id)" cidata
    expect_eq copied "$(cat "$RECONTEXT_RUN_DIR/current/etc/monitoring.conf")" "endpoint=http://monitor-hv-a.example:9090"
    make_disc "$T/d2" 2 hv-b configdrive
    build_iso "$T/d2" config-2 "$T/two.iso" || { fail "cannot build an image"; return; }
    RECONTEXT_DEVICE="$T/two.iso" companion --trigger media-change || fail "exit status $?"
    expect_eq generation "$(applied generation)" 2
    expect_eq format "$(applied format)" configdrive
    build_iso "$T/d2" SOMEONE_ELSE "$T/other.iso"
    RECONTEXT_DEVICE="$T/other.iso" RECONTEXT_MOUNT_RETRIES=1 companion
    expect_eq "exit status (foreign disc)" "$?" 1
    grep -q "volume id 'SOMEONE_ELSE' is not ours" "$T/log" || fail "the log does not say why"
    expect_eq "hook runs" "$(count_lines "$T/runs")" 2
    ls -A "$RECONTEXT_RUN_DIR" | grep -q mnt && fail "a mount point was left"
    return 0
}

# The first read after a SATA/IDE media change fails: the companion retries.
test_mount_retry() {
    use_extract
    make_disc "$T/d1" 1 hv-a
    build_iso "$T/d1" cidata "$T/one.iso" || { fail "cannot build an image"; return; }
    {
        echo '#!/bin/sh'
        echo "echo x >>'$T/mount-calls'"
        echo "if [ \$(wc -l <'$T/mount-calls') -le 2 ]; then echo \"mount: \$2: I/O error\" >&2; exit 32; fi"
        echo "exec '$HERE/iso-extract' \"\$1\" \"\$2\""
    } >"$T/flaky-mount"
    chmod 0755 "$T/flaky-mount"
    RECONTEXT_DEVICE="$T/one.iso" RECONTEXT_MOUNT_CMD="$T/flaky-mount" RECONTEXT_MOUNT_RETRIES=5 companion ||
        fail "exit status $?"
    expect_eq generation "$(applied generation)" 1
    # Two failures, the read, and the re-read after the apply (see process in recontext-apply).
    expect_eq "mount calls" "$(count_lines "$T/mount-calls")" 4
    grep -q 'I/O error' "$T/log" && fail "a retried error was logged as a failure"
    return 0
}

# --watch on a drive without udev: each new disc is applied once.
test_watch() {
    use_extract
    counting_hook
    make_disc "$T/d1" 1 hv-a
    build_iso "$T/d1" cidata "$T/drive.iso" || { fail "cannot build an image"; return; }
    # In a session of its own, so that stopping it stops its children too (as systemd would).
    setsid $TEST_SHELL "$APPLY" --watch "$T/drive.iso" --interval 0.1 2>>"$T/log" &
    watcher=$!
    STARTED_PIDS="$STARTED_PIDS $watcher"
    wait_for 20 test_applied_generation 1
    # The re-read after the apply must not see the next disc: it would apply it (trigger recheck).
    wait_for 20 grep -q 'already applied (trigger recheck)' "$T/log"
    make_disc "$T/d2" 2 hv-b
    build_iso "$T/d2" cidata "$T/next.iso" && mv -f "$T/next.iso" "$T/drive.iso"
    wait_for 20 test_applied_generation 2
    expect_eq trigger "$(applied trigger)" watch
    kill -TERM "-$watcher"
    # bash 5.2 now and then fails to run the TERM trap when the signal lands while it parses a
    # command substitution ("trap: unexpected EOF while looking for matching `)'") and goes on;
    # systemd would KILL after its stop timeout: so does this, and says so.
    n=0
    until process_gone "$watcher" || [ $n -ge 200 ]; do sleep 0.05; n=$((n + 1)); done
    if ! process_gone "$watcher"; then
        echo "    note: the watcher did not stop on TERM; killed"
        kill -KILL "-$watcher" 2>/dev/null
        wait "$watcher" 2>/dev/null
    else
        wait "$watcher" 2>/dev/null
        # The mount point .mnt stays by design (recontext-apply keeps it); it must be empty.
        expect_eq "left in the run directory" "$(ls -A "$RECONTEXT_RUN_DIR" | grep -c '^\.fetch')" 0
        expect_eq "left in the mount point" "$(ls -A "$RECONTEXT_RUN_DIR/.mnt" 2>/dev/null | wc -l | tr -d ' ')" 0
    fi
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|2 hv-b|"
}
# process_gone PID: it exited (a zombie not yet waited for counts as gone).
process_gone() {
    kill -0 "$1" 2>/dev/null || return 0
    grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}
test_applied_generation() { [ "$(applied generation)" = "$1" ]; }

# A real loop device and the kernel's iso9660 with the default mount command (root; a kernel that
# can mount iso9660).
test_loop_mount() {
    unset RECONTEXT_SOURCE_DIR
    counting_hook
    make_disc "$T/d1" 1 hv-a
    build_iso "$T/d1" cidata "$T/one.iso" || { fail "cannot build an image"; return; }
    loop=$(losetup -f --show -r "$T/one.iso") || { fail "losetup failed"; return; }
    LOOP_DEVICES="$LOOP_DEVICES $loop"
    RECONTEXT_DEVICE=$loop companion --trigger media-change || fail "exit status $?"
    expect_eq generation "$(applied generation)" 1
    expect_eq volume_id "$(applied volume_id)" cidata
    expect_eq "user-data mode" "$(stat -c %a "$RECONTEXT_RUN_DIR/current/user-data")" 600
    grep -q "$T" /proc/mounts && fail "the disc is still mounted"
    losetup -d "$loop"
    make_disc "$T/d2" 2 hv-b
    build_iso "$T/d2" cidata "$T/two.iso" || { fail "cannot build an image"; return; }
    loop=$(losetup -f --show -r "$T/two.iso") || { fail "losetup failed"; return; }
    LOOP_DEVICES="$LOOP_DEVICES $loop"
    RECONTEXT_DEVICE=$loop companion --trigger media-change || fail "exit status $?"
    expect_eq generation "$(applied generation)" 2
    losetup -d "$loop"
    expect_eq "hook runs" "$(count_lines "$T/runs")" 2
}

# MARK: - Packages

# make guest-deb and guest-tarball: what goes where; install.sh installs and uninstalls.
# Packages are built on the host: with the host's tools, also when the guest's are busybox's.
test_packages() {
    PATH=$HOST_PATH
    make -s -C "$REPO" guest-deb guest-tarball GEN="$T/gen" OUT="$T/out" >>"$T/log" 2>&1 || { fail "make failed"; return; }
    version=$(sed -n 's/^RECONTEXT_VERSION=//p' "$APPLY")
    deb="$T/out/recontext-guest_${version}_all.deb"
    [ -f "$deb" ] || { fail "no $deb"; return; }
    expect_eq "deb version" "$(dpkg-deb -f "$deb" Version)" "$version"
    dpkg-deb -c "$deb" | awk '{ print $1 " " $6 }' >"$T/contents"
    for entry in "-rwxr-xr-x ./usr/sbin/recontext-apply" "-rw-r--r-- ./lib/udev/rules.d/65-recontext.rules" \
        "-rwxr-xr-x ./usr/sbin/recontext-channel" "-rw-r--r-- ./lib/udev/rules.d/66-recontext-channel.rules" \
        "-rw-r--r-- ./lib/systemd/system/recontext-channel.service" \
        "-rw-r--r-- ./lib/systemd/system/recontext-apply.service" \
        "-rw-r--r-- ./lib/systemd/system/recontext-apply@.service" "-rw-r--r-- ./etc/recontext/hooks.d/README"; do
        expect_line "$T/contents" "$entry"
    done
    expect_eq conffiles "$(dpkg-deb -I "$deb" conffiles)" /etc/recontext/hooks.d/README
    tar -xzf "$T/out/recontext-guest-$version.tar.gz" -C "$T" || { fail "no tarball"; return; }
    DESTDIR="$T/root" "$T/recontext-guest-$version/install.sh" >>"$T/log" 2>&1 || fail "install.sh failed"
    [ -x "$T/root/usr/sbin/recontext-apply" ] || fail "install.sh installed no recontext-apply"
    expect_eq "installed version" "$("$T/root/usr/sbin/recontext-apply" --version)" "recontext-apply $version"
    [ -f "$T/root/etc/udev/rules.d/65-recontext.rules" ] || fail "install.sh installed no udev rule"
    [ -x "$T/root/usr/sbin/recontext-channel" ] || fail "install.sh installed no recontext-channel"
    [ -f "$T/root/etc/udev/rules.d/66-recontext-channel.rules" ] || fail "install.sh installed no channel rule"
    expect_eq "installed channel's version" "$("$T/root/usr/sbin/recontext-channel" --version)" "recontext-channel $version"
    DESTDIR="$T/root" "$T/recontext-guest-$version/install.sh" --uninstall >>"$T/log" 2>&1 || fail "uninstall failed"
    expect_eq "left after uninstall" "$(cd "$T/root" && find . -type f | sort | tr '\n' ' ')" "./etc/recontext/hooks.d/README "
}

# MARK: - Runner

ALL="first_apply journal_log same_generation_twice new_generation same_number_other_hash failing_hook hook_timeout
concurrent_flock concurrent_mkdir_lock stale_mkdir_lock new_generation_during_hook
new_generation_during_hook_no_event notify_waits_for_generation notify_gives_up ack_fd ack_fd_other_holder
record_time bad_record
format_from_volume_id iso_images mount_retry watch loop_mount packages channel_apply channel_bad_lines
channel_reconnect channel_apply_failed channel_other_holder channel_long_ack channel_port_discovery"

echo "recontext-apply tests: shell '$TEST_SHELL', tools: $TOOLS, ISO builder: ${RECONTEXTD_BINARY:-genisoimage}"
passed=0
failed=""
skipped=""
for name in ${*:-$ALL}; do
    T="$WORK/$name"
    mkdir -p "$T/hooks"
    reason=$(skip_reason "$name")
    if [ -n "$reason" ]; then
        if [ "$RECONTEXTD_REQUIRE_REAL_TESTS" = 1 ] && [ "${reason#always-skip: }" = "$reason" ]; then
            echo "FAIL $name: $reason (RECONTEXTD_REQUIRE_REAL_TESTS=1)"
            failed="$failed $name"
        else
            echo "SKIP $name: ${reason#always-skip: }"
            skipped="$skipped $name"
        fi
        continue
    fi
    started=$(date +%s)
    (
        TEST_DIR=$T RECONTEXT_RUN_DIR="$T/run" RECONTEXT_HOOKS_DIR="$T/hooks" RECONTEXT_SOURCE_DIR="$T/disc"
        RECONTEXT_LOG=stderr RECONTEXT_RETRY_DELAY=0.05 RECONTEXT_MOUNT_RETRIES=3 RECONTEXT_NOTIFY_WAIT=5
        export TEST_DIR RECONTEXT_RUN_DIR RECONTEXT_HOOKS_DIR RECONTEXT_SOURCE_DIR RECONTEXT_LOG \
            RECONTEXT_RETRY_DELAY RECONTEXT_MOUNT_RETRIES RECONTEXT_NOTIFY_WAIT
        trap finish_test EXIT
        "test_$name"
    ) >"$T/output" 2>&1
    if [ -s "$T/failures" ]; then
        echo "FAIL $name ($(($(date +%s) - started)) s)"
        sed 's/^/  | /' "$T/output"
        echo "  | -- companion log:"
        sed 's/^/  | /' "$T/log" 2>/dev/null
        failed="$failed $name"
    else
        echo "ok   $name ($(($(date +%s) - started)) s)"
        passed=$((passed + 1))
    fi
done
echo "passed $passed${failed:+, failed:$failed}${skipped:+, skipped:$skipped}"
[ -z "$failed" ]
