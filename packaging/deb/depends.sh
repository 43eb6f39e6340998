#!/bin/sh
# Prints the Debian Depends: of a binary: the package of each library it links directly
# (readelf NEEDED, resolved by ldd, owned per dpkg -S). Libraries that no package owns (a
# dynamically linked Swift runtime under /opt/swift) are reported once on stderr, not depended on.
set -eu
binary=$1
needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
resolved=$(ldd "$binary")
unowned=""
packages=""
for lib in $needed; do
    case "$lib" in ld-linux*) continue ;; esac
    path=$(printf '%s\n' "$resolved" | awk -v lib="$lib" '$1 == lib && $3 ~ /^\// { print $3; exit }')
    if [ -z "$path" ]; then
        echo "depends: $lib: not found by ldd" >&2
        exit 1
    fi
    real=$(readlink -f "$path")
    package=""
    # Debian 12 has merged /usr: a library may be registered under /lib or /usr/lib.
    for candidate in "$path" "$real" "${path#/usr}" "/usr$path" "${real#/usr}" "/usr$real"; do
        package=$(dpkg -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1) || true
        [ -n "$package" ] && break
    done
    if [ -n "$package" ]; then
        packages="$packages $package"
    else
        unowned="$unowned $path"
    fi
done
if [ -n "$unowned" ]; then
    echo "depends: warning: linked libraries no package owns (the package needs them at the same path):$unowned" >&2
fi
printf '%s\n' $packages | sort -u | paste -sd, - | sed 's/,/, /g'
