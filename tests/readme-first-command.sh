#!/usr/bin/env bash
# Runs the README's first command exactly as the README writes it, the way a
# new user would: in a scratch copy of this checkout (so ./demo starts
# empty), twice. The first run must print every line of the README's sample
# output (all but the tick line, whose id and timings change); the second
# must print every line of the README's "second run" sample. The command and
# both samples are read from README.md, never copied here.
#
# Prints one closing line: "readme first command: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

# The first non-comment line of the first ```sh block: the same rule the
# before-stop hook uses.
first=$(awk '/^```(sh|bash|shell|console)$/{f=1;next} /^```/{if(f)exit} f && !/^[[:space:]]*#/ && NF{print; exit}' README.md)
# A sample is the plain ``` block that follows a line containing MARKER.
sample() {
  awk -v marker="$1" 'index($0, marker){m=1; next} m && /^```$/{if(f) exit; f=1; next} f{print}' README.md
}
expected_first=$(sample "drains them in one tick and prints what happened" | grep -v '^tick ')
expected_second=$(sample "The second run prints")

passed=0 failed=0
check() { # name, expected lines, actual output
  local name=$1 expected=$2 actual=$3 missing=""
  if [ -z "$expected" ]; then
    missing="(the README has no sample output for this run)"
  fi
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    grep -qxF -- "$line" <<<"$actual" || missing+=$'\n'"    $line"
  done <<<"$expected"
  if [ -z "$missing" ]; then
    echo "readme: $name: ok"
    passed=$((passed + 1))
  else
    echo "readme: $name: FAILED; lines the README promises but the run did not print:$missing"
    echo "--- output was:"; echo "$actual"; echo "---"
    failed=$((failed + 1))
  fi
}

if [ -z "$first" ]; then
  echo "readme: no first command found in README.md"
  failed=2
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/s3loader-readme.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  # Tracked files plus new ones not ignored: what a clone of this change has.
  git ls-files -z -co --exclude-standard | (cd "$root" && xargs -0 cp --parents -t "$scratch") 2>/dev/null
  echo "readme: running \`$first\` in a scratch copy ($scratch)"
  out1=$(cd "$scratch" && bash -c "$first" 2>&1); rc1=$?
  out2=$(cd "$scratch" && bash -c "$first" 2>&1); rc2=$?
  [ $rc1 -eq 0 ] || out1+=$'\n'"(exit $rc1)"
  [ $rc2 -eq 0 ] || out2+=$'\n'"(exit $rc2)"
  check "first run" "$expected_first" "$(grep -v 'Compiling\|Finished\|Running\|Blocking' <<<"$out1")"
  [ $rc1 -eq 0 ] || { echo "readme: first run exited $rc1"; failed=$((failed + 1)); }
  check "second run loads nothing" "$expected_second" "$out2"
  [ $rc2 -eq 0 ] || { echo "readme: second run exited $rc2"; failed=$((failed + 1)); }
fi
echo "readme first command: $passed passed, $failed failed"
[ $failed -eq 0 ]
