#!/usr/bin/env bash
# Checks the README's quick start on a bare Debian 12: builds a minimal bookworm root
# (debootstrap --variant=minbase: no compiler, no cmake, no sudo, no git), puts a clean clone of
# this repository in it and runs scripts/quickstart.sh there as root, then runs the quick start
# once more without network to check that a machine that has everything installs nothing.
#
#   tools/bare_debian_check.sh [--keep] [--branch BRANCH] [MODE...]
#
#   MODE      quick-start commands to run in order (default: example test)
#   --branch  the branch of this repository to clone (default: the one checked out); the clone
#             takes what is committed, not the working tree
#   --keep    keep the root (its mounts are undone all the same) for a look afterwards
#
# Needs root (debootstrap, mount, chroot) and the Debian archive (MIRROR, default
# http://deb.debian.org/debian); installs debootstrap if it is missing. Each run builds its own
# root under /var/tmp/gradscope-bare-debian/ and removes it on exit. A manual check, not CI: the
# test mode builds everything from scratch (20-40 min on 2 cores).
set -euo pipefail

say() { printf '\n==> [%s] %s\n' "$(date +%T)" "$*"; }
die() { printf 'bare_debian_check: error: %s\n' "$*" >&2; exit 1; }

keep=0
branch=
modes=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) keep=1 ;;
    --branch) [[ $# -ge 2 ]] || die "--branch needs a value"; branch=$2; shift ;;
    example|test) modes+=("$1") ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ ${#modes[@]} -gt 0 ]] || modes=(example test)

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, mount and chroot)"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -n $branch ]] || branch=$(git -C "$repo" symbolic-ref --short HEAD) ||
  die "$repo has no branch checked out; pass --branch"
mirror=${MIRROR:-http://deb.debian.org/debian}

source "$repo/scripts/debian_packages.sh"
install_missing_packages debootstrap

parent=/var/tmp/gradscope-bare-debian
mkdir -p "$parent"
for stale in "$parent"/root.*; do
  if [[ -e $stale ]]; then
    say "note: $stale is another run's (still going, or killed): remove it when no run uses it"
  fi
done
root=$(mktemp -d "$parent/root.XXXXXX")
step="creating $root"
chmod 755 "$root"  # the root's /: apt's _apt user and the build must be able to enter it
mounts=()

cleanup() {
  local status=$? i
  if [[ $status -ne 0 ]]; then
    printf '\nbare_debian_check: FAILED (exit status %s) at %s in: %s\n' "$status" "$(date +%T)" "$step" >&2
  fi
  for (( i=${#mounts[@]}-1; i>=0; i-- )); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" ||
      printf 'bare_debian_check: could not unmount %s\n' "${mounts[i]}" >&2
  done
  if findmnt -rn -o TARGET | grep -q "^$root/"; then
    printf 'bare_debian_check: something is still mounted below %s; not removing it\n' "$root" >&2
  elif [[ $keep -eq 1 ]]; then
    printf 'bare_debian_check: kept %s (rm -rf it when done)\n' "$root" >&2
  else
    rm -rf --one-file-system "$root"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_in_root() {  # mount_in_root TARGET MOUNT-ARGS...
  local target=$root$1
  shift
  mount "$@" "$target"
  mounts+=("$target")
}

# Inside the root: a clean environment (nothing of the caller's locale, PATH or CXX leaks in).
root_env=(/usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8
          PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
in_root() { chroot "$root" "${root_env[@]}" "$@"; }

times=()
timed() {  # timed LABEL COMMAND...
  local label=$1 start=$SECONDS took
  shift
  step=$label
  say "$label"
  "$@"
  took=$(( SECONDS - start ))
  times+=("$(printf '%3dm%02ds  %s' $(( took / 60 )) $(( took % 60 )) "$label")")
  say "done in ${times[-1]}"
}

timed "debootstrap --variant=minbase bookworm $root $mirror" \
  debootstrap --variant=minbase bookworm "$root" "$mirror"
step="setting up the root (resolv.conf, /proc, /sys, /dev)"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount_in_root /proc -t proc proc
mount_in_root /sys -t sysfs sysfs
mount_in_root /dev --bind /dev
mount_in_root /dev/pts --bind /dev/pts

say "The bare root has none of the toolchain:"
for tool in c++ g++ cmake ninja sudo git; do
  ! in_root sh -c "command -v $tool" >/dev/null || die "$tool is already in the bare root"
  printf '  no %s\n' "$tool"
done

timed "git clone --no-local -b $branch $repo /root/gradscope (in the root)" \
  git clone -q --no-local -b "$branch" "$repo" "$root/root/gradscope"
git -C "$root/root/gradscope" log -1 --format='  at %h %s'

for mode in "${modes[@]}"; do
  timed "chroot: scripts/quickstart.sh $mode" \
    in_root bash -c "cd /root/gradscope && scripts/quickstart.sh $mode"
done

# Everything is installed now: the quick start must neither install nor reach the network.
timed "chroot without network: scripts/quickstart.sh example" \
  unshare --net chroot "$root" "${root_env[@]}" bash -c 'cd /root/gradscope && scripts/quickstart.sh example'

say "Passed. Times:"
printf '  %s\n' "${times[@]}"
