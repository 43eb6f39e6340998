# Tests of guest/recontext-channel, the listener of the host-guest channel (sourced by run.sh).
#
# The port is faked by the listener's test seams: it reads the host's lines from the file $T/in
# (reading past its end gives end-of-file, as the virtio-serial port does while no host end is
# connected; lines appended later are read at the next retry, as the guest buffers what the host
# sent) and appends what it sends to $T/out.

CHANNEL="$HERE/../recontext-channel"

# start_channel: the listener, under the shell being tested, in a session of its own (stopping it
# stops the apply it runs too); sets listener (its pid).
start_channel() {
    : >>"$T/in"
    : >>"$T/out"
    RECONTEXT_CHANNEL_IN="$T/in" RECONTEXT_CHANNEL_OUT="$T/out" RECONTEXT_CHANNEL_DEBUG=1 \
        RECONTEXT_APPLY="$TEST_SHELL $APPLY" setsid $TEST_SHELL "$CHANNEL" 2>>"$T/log" &
    listener=$!
    STARTED_PIDS="$STARTED_PIDS $listener"
}

# host_says LINE...: the host writes these lines (one write).
host_says() { printf '%s\n' "$@" >>"$T/in"; }

# disc_hash NAME: the content hash of the disc $T/NAME.
disc_hash() { sed -n 's/.*"content_hash" : "\([0-9a-f]*\)".*/\1/p' "$T/$1/recontext/generation.json"; }

# sent PATTERN: the lines the listener sent that match the grep pattern PATTERN (count).
sent() { grep -c -- "$1" "$T/out" 2>/dev/null; }
has_sent() { [ "$(sent "$1")" -ge "$2" ]; }

version() { sed -n 's/^RECONTEXT_VERSION=//p' "$APPLY"; }

# Hello at start; a generation is applied and acknowledged; the same one again is one apply and a
# second ack; a new one is applied.
test_channel_apply() {
    counting_hook
    use_disc d1 1 hv-a
    start_channel
    wait_for 20 has_sent '^recontext/1 hello ' 1 || return
    expect_eq hello "$(head -n 1 "$T/out")" "recontext/1 hello version=$(version) applied=0 hash=-"
    h1=$(disc_hash d1)
    host_says "recontext/1 generation 1 hash=$h1"
    wait_for 20 has_sent '^recontext/1 applied 1 ' 1 || return
    ack=$(grep '^recontext/1 applied' "$T/out" | head -n 1)
    expect_eq ack "$(echo "$ack" | without_ms)" \
        "recontext/1 applied 1 result=ok hash=$h1 host=hv-a trigger=notify hooks=10-count:ok"
    echo "$ack" | grep -q ' ms=[0-9][0-9]*$' || fail "no ms= in '$ack'"
    host_says "recontext/1 generation 1 hash=$h1"
    wait_for 20 has_sent '^recontext/1 applied 1 ' 2 || return
    expect_eq "second ack" "$(grep '^recontext/1 applied' "$T/out" | tail -n 1)" "$ack"
    expect_eq "hook runs" "$(count_lines "$T/runs")" 1
    grep -q 'generation 1 is applied already' "$T/log" || fail "no 'applied already' in the log"
    use_disc d2 2 hv-b
    host_says "recontext/1 generation 2 hash=$(disc_hash d2)"
    wait_for 20 has_sent '^recontext/1 applied 2 result=ok ' 1 || return
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|2 hv-b|"
    expect_eq "applied trigger" "$(applied trigger)" notify
    # Every hello names what was applied when it was sent.
    grep '^recontext/1 hello ' "$T/out" | tail -n 1 | grep -q "applied=1 hash=$h1" ||
        fail "the hello after generation 1 does not name it: $(grep hello "$T/out" | tail -n 1)"
}

# Garbage, overlong lines, other versions and verbs, injection attempts: logged and dropped; the
# valid line after them (with "\r\n" and an unknown key) is applied once. A 511-byte line (512 with
# its newline) is still taken.
test_channel_bad_lines() {
    counting_hook
    use_disc d1 1 hv-a
    h=$(disc_hash d1)
    upper=$(echo "$h" | tr a-f A-F)
    pad=$(printf '%0600d' 0)
    base="recontext/1 generation 1 hash=$h"
    fill=$(printf "%0$((511 - ${#base} - 5))d" 0)
    host_says "recontext/2 generation 1 hash=$h" "recontext/1 generation 1 hash=$upper" \
        "recontext/1 generation x1 hash=$h" "recontext/1 generation 1  hash=$h" \
        "recontext/1 generation 123456789012345678901 hash=$h" "recontext/1 generation 01 hash=$h" \
        "recontext/1 generation 1 hash=$h junk" "recontext/1 generation 1" \
        "recontext/1 generation \$(touch $T/pwned) hash=$h" "recontext/1 generation 1;touch hash=$h" \
        "recontext/1 reboot now" "$(printf 'recontext/1 generation 1 hash=%s\001' "$h")" \
        "$base pad=$pad" "" "   " "$(printf "$base x=1\r")"
    start_channel
    wait_for 20 has_sent '^recontext/1 applied 1 ' 1 || return
    host_says "$base pad=$fill"
    wait_for 20 has_sent '^recontext/1 applied 1 ' 2 || return
    expect_eq "511-byte line" "$(tail -n 1 "$T/in" | tr -d '\n' | wc -c | tr -d ' ')" 511
    expect_eq "hook runs" "$(count_lines "$T/runs")" 1
    [ -e "$T/pwned" ] && fail "a host line was executed"
    expect_eq "lines sent" "$(grep -vc '^recontext/1 hello ' "$T/out")" 2
    expect_eq "over 512 bytes" "$(grep -c 'dropped a line over 512 bytes' "$T/log")" 1
    expect_eq "other protocol" "$(grep -c 'dropped a line of another protocol' "$T/log")" 1
    expect_eq "not printable" "$(grep -c 'not printable ASCII' "$T/log")" 1
    expect_eq "unknown verb" "$(grep -c "ignored the verb 'reboot'" "$T/log")" 1
    expect_eq "malformed" "$(grep -c 'dropped a malformed' "$T/log")" 11
    return 0
}

# No host end (end-of-file): 50 ms doubling to 1 s; a line appended then is read at the next try,
# the listener says hello again (the port came back) and the backoff starts over at 50 ms.
test_channel_reconnect() {
    use_disc d1 1 hv-a
    start_channel
    wait_for 20 grep -q 'backoff 1000 ms' "$T/log" || return
    backoffs=$(sed -n 's/.*backoff \([0-9]*\) ms/\1/p' "$T/log" | head -n 6 | tr '\n' ' ')
    expect_eq "backoff" "$backoffs" "50 100 200 400 800 1000 "
    expect_eq "no-host-end lines" "$(grep -c 'no host end' "$T/log")" 1
    host_says "recontext/1 generation 1 hash=$(disc_hash d1)"
    wait_for 20 has_sent '^recontext/1 applied 1 ' 1 || return
    expect_eq "hellos" "$(sent '^recontext/1 hello ')" 2
    expect_eq "order" "$(cut -d' ' -f2,3 "$T/out" | tr '\n' '|')" "hello version=$(version)|hello version=$(version)|applied 1|"
    grep -q 'the host end is back' "$T/log" || fail "no 'host end is back' in the log"
    wait_for 20 after_line_backoff_restarts
}
# The first backoff after the host's line is 50 ms again.
after_line_backoff_restarts() {
    sed -n '/the host end is back/,$p' "$T/log" | grep 'debug: backoff' | head -n 1 | grep -q 'backoff 50 ms'
}

# A disc that cannot be read: result=failed with the announced generation and hash.
test_channel_apply_failed() {
    use_disc d1 1 hv-a
    h=$(disc_hash d1)
    rm "$T/d1/recontext/generation.json"
    RECONTEXT_NOTIFY_WAIT=1
    export RECONTEXT_NOTIFY_WAIT
    start_channel
    host_says "recontext/1 generation 1 hash=$h"
    wait_for 20 has_sent '^recontext/1 applied 1 ' 1 || return
    expect_eq ack "$(grep '^recontext/1 applied' "$T/out")" \
        "recontext/1 applied 1 result=failed hash=$h host=- trigger=notify hooks=-"
}

# A media change's run holds the lock (its hook is slow) when the host announces the same
# generation: the listener's request goes to that run, and the ack follows when it is done.
test_channel_other_holder() {
    start_blocked || return
    start_channel
    host_says "recontext/1 generation 1 hash=$(disc_hash d1)"
    wait_for 20 grep -q 'host: generation 1 ' "$T/log" || return
    expect_eq "acks while the hook runs" "$(sent '^recontext/1 applied')" 0
    : >"$T/release"
    wait_for 20 has_sent '^recontext/1 applied 1 result=ok ' 1 || return
    wait "$first" || fail "first: exit status $?"
    expect_eq "hook runs" "$(tr '\n' '|' <"$T/runs")" "1 hv-a|"
    grep '^recontext/1 applied' "$T/out" | grep -q 'trigger=media-change' || fail "the ack is not the media change's"
}

# 40 hooks, some with names over 64 bytes: the ack the host gets fits its bounds (512 bytes with
# the newline, 32 entries, names of 64 bytes at most); the record keeps them all.
test_channel_long_ack() {
    n=10
    while [ $n -lt 50 ]; do
        hook "$n-a-hook-with-a-rather-long-name-to-fill-the-line" 'exit 0'
        n=$((n + 1))
    done
    hook 99-$(printf '%070d' 0) 'exit 3'
    use_disc d1 1 hv-a
    start_channel
    host_says "recontext/1 generation 1 hash=$(disc_hash d1)"
    wait_for 30 has_sent '^recontext/1 applied 1 ' 1 || return
    ack=$(grep '^recontext/1 applied' "$T/out")
    [ $((${#ack} + 1)) -le 512 ] || fail "the ack is ${#ack} bytes"
    entries=$(echo "${ack#*hooks=}" | cut -d' ' -f1 | tr ',' '\n')
    [ "$(echo "$entries" | wc -l)" -le 32 ] || fail "more than 32 hook entries"
    echo "$entries" | grep -q '^99-' && fail "a hook name over 64 bytes was sent"
    echo "$ack" | grep -q ' result=hooks-failed .* ms=[0-9]*$' || fail "ack: $ack"
    expect_eq "hooks in the record" "$(applied hooks | wc -w | tr -d ' ')" 41
    grep -q "hook list was cut" "$T/log" || fail "the cut is not in the log"
}

# No udev: the port is found by its name in /sys/class/virtio-ports and its node made from "dev"
# (a fake sysfs and /dev here; the numbers are /dev/null's, which reads as a port without host end).
test_channel_port_discovery() {
    mkdir -p "$T/sys/vport0p1" "$T/sys/vport1p2" "$T/sys/vport2p3" "$T/dev"
    echo org.qemu.guest_agent.0 >"$T/sys/vport0p1/name"
    echo 1:3 >"$T/sys/vport0p1/dev"
    echo org.recontextd.channel.0 >"$T/sys/vport1p2/name"
    echo 1:3 >"$T/sys/vport1p2/dev"
    echo org.recontextd.channel.0 >"$T/sys/vport2p3/name"
    RECONTEXT_CHANNEL_SYSFS="$T/sys" RECONTEXT_CHANNEL_DEV="$T/dev" RECONTEXT_CHANNEL_DEBUG=1 \
        RECONTEXT_APPLY="$TEST_SHELL $APPLY" setsid $TEST_SHELL "$CHANNEL" 2>>"$T/log" &
    STARTED_PIDS="$STARTED_PIDS $!"
    wait_for 20 grep -q 'no host end' "$T/log" || return
    grep -q "listening on $T/dev/vport1p2 " "$T/log" || fail "not listening on vport1p2"
    [ -c "$T/dev/vport1p2" ] || fail "no character device $T/dev/vport1p2"
    expect_eq "device numbers" "$(stat -c '%t:%T' "$T/dev/vport1p2")" 1:3
    expect_eq "mode" "$(stat -c '%a' "$T/dev/vport1p2")" 600
    expect_eq "other nodes" "$(ls "$T/dev" | tr '\n' ' ')" "vport1p2 "
    grep -q 'sent: hello ' "$T/log" || fail "no hello written"
}
