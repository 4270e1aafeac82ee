# Steps of a long script, timed: sourced by scripts/test.sh, which sets RUN_DIR first.
#
#   step NAME            the commands that follow, up to the next step, are step NAME
#   background NAME CMD  runs CMD (a program, not a shell function) beside the other steps, its
#                        output in a log of its own; its time is its own, not the waiter's
#   await NAME           waits for a background step; shows its log and stops if it failed
#   background_log NAME  the log file of a background step
#   steps_finish RC      ends the current step (failed unless RC is 0) and stops what still runs
#   steps_report JUNIT.. prints every step's start and duration, then the ten slowest tests
#                        found in nextest's JUnit reports
# Each step is announced on stderr as "==> NAME".

STEPS_FILE="$RUN_DIR/steps.tsv"
STEPS_T0="$EPOCHREALTIME"
STEP_NAME=""
STEP_START=""
declare -A STEP_PIDS=()

_steps_record() { # start end status name
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STEPS_FILE"
}

_steps_slug() { echo "$1" | tr -c 'a-zA-Z0-9\n' '-'; }

step() {
  [[ -z "$STEP_NAME" ]] || _steps_record "$STEP_START" "$EPOCHREALTIME" ok "$STEP_NAME"
  STEP_NAME="$1"
  STEP_START="$EPOCHREALTIME"
  echo "==> $1" >&2
}

background_log() { echo "$RUN_DIR/$(_steps_slug "$1").log"; }

background() {
  local name="$1" slug
  shift
  slug="$(_steps_slug "$name")"
  echo "==> $name (in the background: $(background_log "$name"))" >&2
  # setsid: the step and whatever it starts form a process group that steps_finish can stop.
  # The step writes its own end time, so a late await does not lengthen it.
  setsid -w bash -c 'start=$EPOCHREALTIME; rc=0; "${@:2}" || rc=$?; echo "$start $EPOCHREALTIME $rc" >"$1"; exit "$rc"' \
    _ "$RUN_DIR/$slug.end" "$@" >"$RUN_DIR/$slug.log" 2>&1 </dev/null &
  STEP_PIDS[$name]=$!
}

await() {
  local name="$1" slug start end rc=0
  slug="$(_steps_slug "$name")"
  wait "${STEP_PIDS[$name]}" || rc=$?
  unset "STEP_PIDS[$name]"
  if [[ -f "$RUN_DIR/$slug.end" ]]; then
    read -r start end _ <"$RUN_DIR/$slug.end"
  else
    start="$STEPS_T0" end="$EPOCHREALTIME"
  fi
  if [[ "$rc" -ne 0 ]]; then
    _steps_record "$start" "$end" "FAILED ($rc)" "$name"
    tail -40 "$RUN_DIR/$slug.log" >&2
    echo "==> $name FAILED (exit $rc); its log's last lines are above" >&2
    return "$rc"
  fi
  _steps_record "$start" "$end" ok "$name"
}

steps_finish() {
  local rc="$1" name
  if [[ -n "$STEP_NAME" ]]; then
    _steps_record "$STEP_START" "$EPOCHREALTIME" "$([[ "$rc" -eq 0 ]] && echo ok || echo "FAILED ($rc)")" "$STEP_NAME"
    STEP_NAME=""
  fi
  for name in "${!STEP_PIDS[@]}"; do
    kill -TERM -- "-${STEP_PIDS[$name]}" 2>/dev/null || true
    _steps_record "$STEPS_T0" "$EPOCHREALTIME" "stopped" "$name"
  done
  STEP_PIDS=()
}

steps_report() {
  python3 - "$STEPS_FILE" "$STEPS_T0" "$EPOCHREALTIME" "$@" <<'EOF'
import sys
import xml.etree.ElementTree as ET

steps_file, t0, t1, reports = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
rows = []
try:
    with open(steps_file) as f:
        for line in f:
            start, end, status, name = line.rstrip("\n").split("\t", 3)
            rows.append((float(start), float(end), status, name))
except FileNotFoundError:
    pass
rows.sort()
width = max([len(r[3]) for r in rows] + [10])
out = sys.stderr
print("", file=out)
print(f"{'step':<{width}}  {'from':>6}  {'seconds':>8}  status", file=out)
for start, end, status, name in rows:
    print(f"{name:<{width}}  {start - t0:>6.0f}  {end - start:>8.1f}  {status}", file=out)
print(f"{'whole run':<{width}}  {0:>6.0f}  {t1 - t0:>8.1f}", file=out)

tests = []
for report in reports:
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        continue
    for case in root.iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        name = f"{case.get('classname', '')} {case.get('name', '')}".strip()
        tests.append((float(case.get("time", "0")), name, "FAILED" if failed else "ok"))
if tests:
    tests.sort(reverse=True)
    print(f"\n{len(tests)} tests ran; the ten slowest:", file=out)
    for seconds, name, status in tests[:10]:
        print(f"  {seconds:>7.1f} s  {name}{'' if status == 'ok' else '  ' + status}", file=out)
EOF
}
