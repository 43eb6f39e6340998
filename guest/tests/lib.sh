# Helpers of run.sh (sourced; POSIX sh). See run.sh for the environment.

# fail MESSAGE: marks the current test failed.
fail() {
    echo "    FAIL: $*"
    echo "$*" >>"$T/failures"
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# expect_file_has FILE TEXT: FILE contains the line TEXT.
expect_line() {
    grep -qxF -- "$2" "$1" 2>/dev/null || fail "$1 has no line '$2' (it has: $(tr '\n' '|' <"$1" 2>/dev/null))"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds; fails the test after SECONDS.
wait_for() {
    limit=$(($1 * 20))
    shift
    n=0
    until "$@"; do
        n=$((n + 1))
        if [ "$n" -ge "$limit" ]; then
            fail "timed out waiting for: $*"
            return 1
        fi
        sleep 0.05
    done
}

# companion ARGS...: runs recontext-apply under the shell being tested, its log appended to $T/log.
companion() {
    $TEST_SHELL "$APPLY" "$@" 2>>"$T/log"
}

# without_ms [FILE]: ack lines without their " ms=D" (the apply's duration varies).
without_ms() { sed 's/ ms=[0-9]*$//' "$@"; }
applied() { sed -n "s/^$1=//p" "$RECONTEXT_RUN_DIR/applied" 2>/dev/null; }
hash_of() { printf '%s' "$1" | sha256sum | cut -c1-64; }
count_lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

# make_disc DIR GENERATION HOST [FORMAT] [CONTENT]: a context tree as recontextd writes it.
make_disc() {
    dir=$1
    format=${4:-nocloud}
    content=${5:-endpoint=http://monitor-$3.example:9090}
    hash=$(hash_of "$format/$3/$content")
    rm -rf "$dir"
    mkdir -p "$dir/recontext" "$dir/etc"
    printf '%s\n' "$content" >"$dir/etc/monitoring.conf"
    printf 'instance-id: stable\nlocal-hostname: vm1\n' >"$dir/meta-data"
    printf '#cloud-config\n{}\n' >"$dir/user-data"
    chmod 0600 "$dir/user-data"
    cat >"$dir/recontext/generation.json" <<EOF
{
  "content_hash" : "$hash",
  "domain_uuid" : "6f1e2c3a-0000-4000-8000-00000000a001",
  "generation" : $2,
  "host" : "$3"
}
EOF
    cat >"$dir/recontext/context.json" <<EOF
{
  "domain" : {
    "name" : "vm1",
    "uuid" : "6f1e2c3a-0000-4000-8000-00000000a001"
  },
  "format" : "$format",
  "host" : {
    "name" : "$3",
    "variables" : {
      "format" : "not-this-one"
    }
  },
  "hostname" : "vm1",
  "instance_id" : "6f1e2c3a-0000-4000-8000-00000000a001",
  "variables" : {

  }
}
EOF
}

# use_disc NAME GENERATION HOST [FORMAT] [CONTENT]: builds $T/NAME and points $T/disc (the
# RECONTEXT_SOURCE_DIR) at it, by a symlink renamed over the old one (a media change).
use_disc() {
    make_disc "$T/$1" "$2" "$3" "$4" "$5"
    ln -s "$T/$1" "$T/disc.new"
    mv -T "$T/disc.new" "$T/disc" 2>/dev/null || { rm -f "$T/disc"; mv "$T/disc.new" "$T/disc"; }
}

# hook NAME BODY: an executable hook.
hook() {
    printf '#!/bin/sh\n%s\n' "$2" >"$RECONTEXT_HOOKS_DIR/$1"
    chmod 0755 "$RECONTEXT_HOOKS_DIR/$1"
}

# A hook that records each run ("generation host") in $T/runs.
counting_hook() {
    hook "${1:-10-count}" 'echo "$RECONTEXT_GENERATION $RECONTEXT_HOST" >>"$TEST_DIR/runs"'
}

# A hook that records its run, says it started ($T/started) and waits for $T/release.
blocking_hook() {
    hook 10-block 'echo "$RECONTEXT_GENERATION $RECONTEXT_HOST" >>"$TEST_DIR/runs"
: >"$TEST_DIR/started"
n=0
while [ ! -e "$TEST_DIR/release" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done'
}

# build_iso DIR VOLUME_ID OUTPUT: with recontextd build-iso when there is a binary, else genisoimage.
build_iso() {
    if [ -n "$RECONTEXTD_BINARY" ] && [ -x "$RECONTEXTD_BINARY" ]; then
        "$RECONTEXTD_BINARY" build-iso --volume-id "$2" --output "$3" "$1" >>"$T/log" 2>&1
    else
        genisoimage -quiet -V "$2" -r -J -o "$3" "$1" >>"$T/log" 2>&1
    fi
}
