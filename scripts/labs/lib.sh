# shellcheck shell=bash disable=SC2034  # sourced; the patterns are used by the checks
# Shared by every scripts/labs/*/check (sourced, bash only).
#
# A check has two modes:
#   check [--dir DIR]   the student ran the handout's steps; check their hand-in
#                       folder (default ~/ipclab-labs/<lab>) step by step.
#   check --auto        perform the handout's steps itself in a temporary hand-in
#                       folder (or --dir DIR, kept), write answers from what it
#                       measured, then check it the same way (what `make
#                       labs-check` runs), and check that the grader refuses
#                       answers without the figures (as --self-test does).
#   check --self-test   only that last part: the grader refuses empty answers
#                       ("Q1: idk") and answers without the figures asked for.
# In --auto mode every command is first looked up, character for character, in
# the lab's README.md, so the handout cannot drift from what is exercised.
# Background commands run in a session of their own; only those sessions are
# stopped, by process-group id, and the temporary folder is removed on exit.
# LAB_DEBUG=1 prints each command with the seconds elapsed.

set -euo pipefail

LAB_HOME=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
LAB=$(basename "$LAB_HOME")
README=$LAB_HOME/README.md
ROOT=$(cd "$LAB_HOME/../../.." && pwd)
AUTO=0 SELFTEST=0 DIR_GIVEN=0
H=${HOME:-/tmp}/ipclab-labs/$LAB
FAILS=0 PASSES=0 SKIPS=0
T0=$SECONDS
GROUPS_STARTED=()
INPUT_FDS=()
TMP=

usage() {
    cat <<EOF
usage: scripts/labs/$LAB/check [--dir DIR] [--auto] [--self-test]
  (no option)  check the hand-in folder you filled following README.md (default $H):
               the files of every step, and that answers.md answers every
               question with the measured figures it asks for
  --dir DIR    check DIR instead (with --auto: fill DIR and keep it)
  --auto       perform every step itself in a temporary folder, write answers
               with the figures it measured, then check it (used by
               \`make labs-check\`; leaves nothing behind)
  --self-test  check only that the grader refuses answers such as 'Q1: idk'
               and answers without the figures the questions ask for
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --auto) AUTO=1 ;;
        --self-test) SELFTEST=1 ;;
        --dir) [ $# -ge 2 ] || { echo "check: --dir needs a folder" >&2; exit 2; }; H=$2; DIR_GIVEN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$ROOT"

# --- reporting -------------------------------------------------------------
step() { printf "\n== %s: %s   [t=%ss]\n" "$1" "$2" $((SECONDS - T0)); }
pass() { PASSES=$((PASSES + 1)); printf 'PASS  %s\n' "$1"; }
fail() { FAILS=$((FAILS + 1)); printf 'FAIL  %s\n' "$1"; printf '      hint: %s\n' "$2"; }
skip() { SKIPS=$((SKIPS + 1)); printf 'SKIP  %s (%s)\n' "$1" "$2"; }

# expect WHAT FILE ERE HINT: passes when FILE has a line matching ERE.
expect() {
    if [ ! -s "$2" ]; then
        fail "$1" "$2 is missing or empty. $4"
    elif grep -Eq -- "$3" "$2"; then
        pass "$1"
    else
        fail "$1" "$2 has no line matching /$3/. $4"
    fi
}

# count_lines FILE ERE: how many lines of FILE match ERE (0 when missing).
count_lines() { local n; n=$(grep -Ec -- "$2" "$1" 2>/dev/null) || true; echo "${n:-0}"; }

finish() {
    printf '\n%s: %d passed, %d failed, %d skipped (%ds)\n' \
        "$LAB" "$PASSES" "$FAILS" "$SKIPS" $((SECONDS - T0))
    [ "$FAILS" -eq 0 ]
}

# --- the auto mode's machinery ----------------------------------------------
cleanup() {
    local g fd
    for fd in "${INPUT_FDS[@]}"; do eval "exec $fd>&-" 2>/dev/null || true; done
    for g in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    for g in "${GROUPS_STARTED[@]}"; do wait_group_gone "$g" 80 || kill -KILL -- "-$g" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$TMP" ] && rm -rf -- "$TMP"
}

auto_setup() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/ipclab-lab.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    [ "$DIR_GIVEN" -eq 1 ] || H=$TMP/handin
    mkdir -p "$H"
    H=$(cd "$H" && pwd)
    export H
}

# documented CMD: the handout must contain CMD exactly (drift guard).
documented() {
    if ! grep -Fq -- "$1" "$README"; then
        fail "handout still shows: $1" "README.md no longer contains this command; update the check or the handout together"
        return 1
    fi
}

# run CMD [INPUT]: run a documented foreground command (bounded to 60 s),
# with INPUT on stdin if given; output goes to $TMP/last.out.
run() {
    documented "$1" || return 1
    local rc=0
    if [ $# -ge 2 ]; then
        printf '%s\n' "$2" | timeout 60 bash -o pipefail -c "$1" >"$TMP/last.out" 2>&1 || rc=$?
    else
        timeout 60 bash -o pipefail -c "$1" </dev/null >"$TMP/last.out" 2>&1 || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        printf '      (exit %d: %s)\n' "$rc" "$1"
        tail -n 3 "$TMP/last.out" | sed 's/^/      | /'
    fi
    [ -z "${LAB_DEBUG:-}" ] || printf "      [%ss] %s\n" $((SECONDS - T0)) "$1"
    return "$rc"
}

# start KEY CMD [stdin]: start a documented command in a session of its own.
# With a third argument "stdin", its stdin is a FIFO we hold open until
# close_input KEY (as a student would press Ctrl-D). Output: $TMP/KEY.log.
start() {
    documented "$2" || return 1
    [ -z "${LAB_DEBUG:-}" ] || printf "      [%ss] start %s\n" $((SECONDS - T0)) "$2"
    local key=$1 cmd=$2 fd pid close="" f
    if [ "${3:-}" = stdin ]; then
        mkfifo "$TMP/$key.in"
        exec {fd}<>"$TMP/$key.in"
        INPUT_FDS+=("$fd")
        eval "INPUT_$key=$fd"
    fi
    # no started command may hold another one's input open (its EOF is Ctrl-D)
    for f in "${INPUT_FDS[@]}"; do close+="exec $f>&-; "; done
    if [ "${3:-}" = stdin ]; then
        setsid bash -c "$close$cmd" <"$TMP/$key.in" >"$TMP/$key.log" 2>&1 &
    else
        setsid bash -c "$close$cmd" </dev/null >"$TMP/$key.log" 2>&1 &
    fi
    pid=$!
    GROUPS_STARTED+=("$pid")
    eval "GROUP_$key=$pid"
}

# feed KEY TEXT: write a line to KEY's stdin. close_input KEY: send EOF.
feed() { local fd; eval "fd=\$INPUT_$1"; printf '%s\n' "$2" >&"$fd"; }
close_input() { local fd; eval "fd=\$INPUT_$1"; eval "exec $fd>&-"; }

wait_group_gone() { # PGID TENTHS
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 -- "-$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# wait_for FILE ERE [TENTHS]: until FILE has a matching line (default 10 s).
wait_for() {
    local i
    for ((i = 0; i < ${3:-100}; i++)); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# server_started FILE: wait for bin/server's "listening on ... (pid N)" line in
# FILE, set SPID (and PORT for tcp) from it. Returns non-zero on timeout.
server_started() {
    wait_for "$1" 'listening on .*\(pid [0-9]+\)' || { echo "      (no 'listening' line in $1:)"; sed 's/^/      | /' "$1" 2>/dev/null | tail -5; return 1; }
    SPID=$(sed -n 's/.*listening on .*(pid \([0-9]*\)).*/\1/p' "$1" | tail -1)
    local p
    p=$(sed -n 's/.*listening on tcp .*:\([0-9]*\) (pid.*/\1/p' "$1" | tail -1)
    [ -n "$p" ] && PORT=$p
    export SPID PORT
}

# stop KEY [SIGNAL]: Ctrl-C in the student's terminal; SIGINT to the server
# (SPID_KEY if set) or else to the whole group, then wait for the group to end.
stop() {
    local g
    eval "g=\$GROUP_$1"
    kill -"${2:-INT}" -- "-$g" 2>/dev/null || true
    wait_group_gone "$g" 100 || { kill -KILL -- "-$g" 2>/dev/null || true; wait_group_gone "$g" 20 || true; }
}

# stop_server KEY: SIGINT to the server only (as Ctrl-C would, tee keeps the
# last lines), then wait for KEY's group to end.
stop_server() {
    local g
    eval "g=\$GROUP_$1"
    [ -n "${SPID:-}" ] && kill -INT "$SPID" 2>/dev/null || true
    wait_group_gone "$g" 100 || { kill -KILL -- "-$g" 2>/dev/null || true; wait_group_gone "$g" 20 || true; }
}

# A free TCP port on loopback for --auto (the server then binds it itself),
# outside the kernel's ephemeral range: CTest runs beside the labs in `make
# test`, and a connection of its made after our check could take a port in
# that range as its local one, so a server started later failed to bind it
# ("Address already in use", once, in lab 2's step 2 at port 37282).
free_port() {
    local p i lo=32768 hi=60999 base span
    read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    if [ "$lo" -gt 11024 ]; then base=10000; span=$((lo - 10000))
    elif [ "$hi" -lt 64511 ]; then base=$((hi + 1)); span=$((65535 - hi))
    else base=1024; span=$((lo - 1024)); fi
    [ "$span" -ge 100 ] || { base=20000; span=40000; }  # no room outside it: anywhere, as before
    for ((i = 0; i < 50; i++)); do
        p=$((base + RANDOM % span))
        ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}

# --- grading the answers ----------------------------------------------------
# Each lab declares what every answer must contain with
#   ask Q MIN_WORDS [COUNT ERE WHAT]...
# e.g. ask Q5 15 1 "$N_READS" "how many reads the message took (e.g. '3 reads')"
# An answer is the text after its 'Qn:' label (a line, or a heading and the
# lines below it) up to the next 'Qm' label. It passes when it has at least
# MIN_WORDS words and, for each rule, at least COUNT matches of ERE (grep -E,
# case-insensitive). The figures' patterns:
NUM='[0-9]+([.,][0-9]+)?'
TIME="$NUM ?(ns|us|µs|μs|ms|s|sec|seconds?|microseconds?|milliseconds?|nanoseconds?)\b"
SIZE="$NUM ?(B|bytes?|KiB|KB|kB|MiB|MB|GiB|GB)\b"
RATE="$NUM ?(B/s|KB/s|kB/s|MB/s|MiB/s|GB/s|GiB/s|[kMG]bit/s|msg/s|sessions/s|connections/s|/s)"
FIGURE="$NUM ?(ns|us|µs|μs|ms|s|B|bytes?|KiB|KB|kB|MiB|MB|GiB|GB|B/s|KB/s|MB/s|MiB/s|GB/s|msg/s|/s|%|x|×)(\b|$| )"
RATIO="$NUM ?(x|×|times)\b|ratio|[0-9] ?/ ?[0-9]"
INT='\b[0-9]+\b'
QUESTIONS=()
declare -A RULES=() MINWORDS=()
ask() {
    local q=$1
    QUESTIONS+=("$q")
    MINWORDS[$q]=$2
    RULES[$q]=
    shift 2
    while [ $# -ge 3 ]; do
        RULES[$q]+="$1"$'\t'"$2"$'\t'"$3"$'\n'
        shift 3
    done
}

# answer_text FILE Q: answer Q's text, its label removed.
answer_text() {
    awk -v q="$2" '
        match($0, /^[ \t]*(#+[ \t]*)?(\*\*)?(- )?Q[0-9]+/) {
            s = substr($0, 1, RLENGTH); gsub(/[^0-9]/, "", s); on = ("Q" s == q)
            if (on) { sub(/^[ \t]*(#+[ \t]*)?(\*\*)?(- )?Q[0-9]+(\*\*)?[:.)]?(\*\*)?[ \t]*/, ""); print }
            next
        }
        on { print }' "$1" 2>/dev/null
}

# grade FILE Q: prints what answer Q lacks (nothing when it is complete).
grade() {
    local text words n count ere what missing=()
    text=$(answer_text "$1" "$2")
    words=$(printf '%s\n' "$text" | wc -w)
    if [ "$words" -eq 0 ]; then
        echo "no answer: write it under a line starting '$2:'"
        return
    fi
    [ "$words" -ge "${MINWORDS[$2]}" ] ||
        missing+=("an explanation (${words} words; write at least ${MINWORDS[$2]})")
    while IFS=$'\t' read -r n ere what; do
        [ -n "$n" ] || continue
        count=$(printf '%s\n' "$text" | grep -oiE -- "$ere" | wc -l)
        [ "$count" -ge "$n" ] || missing+=("$what (found $count, need $n)")
    done <<<"${RULES[$2]}"
    [ ${#missing[@]} -eq 0 ] || { printf 'missing: %s' "${missing[0]}"; printf '; %s' "${missing[@]:1}"; echo; }
}

# check_answers: every question of answers.md has the figures it asks for.
check_answers() {
    local f=$H/answers.md q why
    if [ ! -s "$f" ]; then
        fail "answers.md answers ${QUESTIONS[*]}" "write $f: one 'Q1:' ... line or heading per question, with the figures you measured"
        return
    fi
    for q in "${QUESTIONS[@]}"; do
        why=$(grade "$f" "$q")
        if [ -z "$why" ]; then pass "answers.md answers $q with the figures asked for"; else
            fail "answers.md answers $q" "$q $why"; fi
    done
}

# self_test: the grader must refuse 'Qn: idk' and an answer of many words
# without a figure, for every question that asks for figures, and accept a
# complete answers file (the one --auto wrote, when there is one).
self_test() {
    local bad=$TMP/selftest.md q why refused=0 figureless=0 asks=0 filler
    filler="I looked at the output carefully and I think it depends on the machine and on the kernel, which does what it does for reasons of its own"
    step T "the grader itself"
    for q in "${QUESTIONS[@]}"; do printf '%s: idk\n' "$q"; done >"$bad"
    for q in "${QUESTIONS[@]}"; do [ -n "$(grade "$bad" "$q")" ] && refused=$((refused + 1)); done
    if [ "$refused" -eq ${#QUESTIONS[@]} ]; then pass "the grader refuses 'Qn: idk' for all $refused questions ($(grade "$bad" Q1))"; else
        fail "the grader refuses 'Qn: idk'" "only $refused of ${#QUESTIONS[@]} refused; see ask in the check"; fi
    for q in "${QUESTIONS[@]}"; do printf '## %s\n%s %s.\n\n' "$q" "$filler" "$filler"; done >"$bad"
    for q in "${QUESTIONS[@]}"; do
        [ -n "${RULES[$q]}" ] || continue
        asks=$((asks + 1))
        [ -n "$(grade "$bad" "$q")" ] && figureless=$((figureless + 1))
    done
    if [ "$figureless" -eq "$asks" ]; then pass "the grader refuses long answers without the figures ($figureless of $asks questions)"; else
        fail "the grader refuses long answers without the figures" "only $figureless of $asks refused"; fi
}

# grade_answers: the last step of every check. --auto writes answers.md from
# what it measured (the lab's auto_answers) unless one is there, grades it,
# then tests the grader; --self-test only tests the grader.
grade_answers() {
    if [ "$AUTO" -eq 1 ] && [ ! -s "$H/answers.md" ]; then
        auto_answers >"$H/answers.md"
    fi
    check_answers
    [ "$AUTO" -eq 1 ] && self_test
    return 0
}

# --self-test: no steps, no hand-in; exits after testing the grader.
run_self_test() {
    [ "$SELFTEST" -eq 1 ] || return 0
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/ipclab-lab.XXXXXX")
    trap 'rm -rf -- "$TMP"' EXIT
    self_test
    finish
    exit $?
}

need_binaries() {
    local b ok=1
    for b in bin/server bin/client bin/ipc-bench; do
        [ -x "$b" ] || ok=0
    done
    if [ "$ok" -eq 1 ]; then pass "bin/server, bin/client, bin/ipc-bench are built"; else
        fail "bin/server, bin/client, bin/ipc-bench are built" "run \`make\` in the repository root first"
        finish || exit 1
    fi
}

need_handin() {
    if [ "$AUTO" -eq 0 ] && [ ! -d "$H" ]; then
        fail "hand-in folder $H exists" "follow README.md step 0 (mkdir -p \$H), or pass --dir DIR"
        finish || exit 1
    fi
}
