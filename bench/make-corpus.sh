#!/usr/bin/env bash
# Assembles the benchmark corpus: the sources of every crate pinned by corpus/Cargo.lock (real
# Rust, C and assembly, about 1 GB), each as a git repository with one commit whose author and
# date are fixed, so every run searches the same bytes.
#
#   bench/make-corpus.sh DIR [full|small]
#
# `small` keeps only crates whose names start with a, b or c (a quick run). Needs cargo, with
# the crates registry reachable the first time, and git. Running it again reuses DIR.
set -euo pipefail
dir=${1:?usage: make-corpus.sh DIR [full|small]}
which=${2:-full}
bench=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ ! -d "$dir/.vendor" ]; then
  (cd "$bench/corpus" && cargo vendor --locked --quiet "$dir/.vendor.partial" >/dev/null)
  mv "$dir/.vendor.partial" "$dir/.vendor"
fi

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@quarry.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@quarry.invalid
export GIT_AUTHOR_DATE=2025-01-01T00:00:00Z GIT_COMMITTER_DATE=2025-01-01T00:00:00Z
mkdir -p "$dir/repos"
count=0
for crate in "$dir"/.vendor/*/; do
  name=$(basename "$crate")
  case "$which" in small) [[ "$name" =~ ^[abc] ]] || continue ;; esac
  count=$((count + 1))
  repo="$dir/repos/$name"
  [ -d "$repo/.git" ] && continue
  rm -rf "$repo"
  cp -R "$crate" "$repo"
  git -C "$repo" init --quiet --initial-branch=main
  git -C "$repo" add --all --force
  git -C "$repo" commit --quiet --no-gpg-sign --message "$name"
done
echo "$count repositories in $dir/repos, $(du -sh --exclude=.git "$dir/repos" | cut -f1) of files"
