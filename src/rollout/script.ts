/**
 * The rollout of one service instance, as a POSIX sh script run on its host inside a transient systemd unit
 * (so that it completes even when rtctl or its SSH session dies). Pure data: recipes/services.ts embeds it.
 *
 * Arguments: RCFILE SERVICE PORT VERSION HASH MODE DIR CHECK INTERVAL TIMEOUT THRESHOLD DEADLINE DRAIN_TIMEOUT
 * ON_FAILURE LBS BACKEND ADDRESS CONSUL PAUSE STATEDIR
 *   MODE: deploy (switch to VERSION), restart (same release), rollback (to the instance's previous release),
 *         remove (drain, stop, forget a surplus instance).
 *   CHECK: `http:/path` or `tcp`. LBS: `addr:port,…` HAProxy Runtime APIs (TCP) or `-`. CONSUL: 1 = Consul agent here
 *   (its token, with ACLs, in $CONSUL_HTTP_TOKEN_FILE; maintenance mode and deregistration need only service:write).
 * The result goes to RCFILE (0 = done); every message to stdout (the unit's log file, shown by rtctl).
 *
 * (Written with `@{` for sh's `${`, which a JavaScript template would otherwise interpolate.)
 *
 * Invariant: whatever happens, the script ends with the instance undrained if it is healthy, and says so if it
 * is left drained or stopped. Drain and undrain are idempotent, so running it again is always safe.
 */
export const ROLL_SCRIPT = String.raw`set -u
rcfile=$1; svc=$2; port=$3; ver=$4; hash=$5; mode=$6; dir=$7; check=$8; ival=$9; shift 9
tmo=$1; thr=$2; deadline=$3; draintmo=$4; onfail=$5; lbs=$6; be=$7; addr=$8; consul=$9; shift 9
pause=$1; statedir=$2
unit="$svc@$port.service"; inst="$dir/instances/$port"; st="$statedir/$svc/$port"; id="$svc-$port"
host=$(hostname); last=''
mkdir -p "$statedir/$svc" "$dir/instances"
echo 1 > "$rcfile"
say() { printf '%s %s: %s\n' "$host" "$svc@$port" "$*"; }
finish() { echo "$1" > "$rcfile"; exit "$1"; }

# HAProxy Runtime API over TCP (bash's /dev/tcp: the hosts have no socat or nc).
api() { timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1; printf "%s\n" "$2" >&3; cat <&3' "$1" "$2" "$3" 2>/dev/null; }
# The server slot of this instance in the backend, found by address and port (slot names are the LB's business).
slot() {
  api "$1" "$2" "show servers state $be" | awk -v a="$addr" -v p="$port" '
    /^# be_id/ { for (i = 2; i <= NF; i++) c[$i] = i - 1; next }
    ("srv_addr" in c) && $c["srv_addr"] == a && $c["srv_port"] == p { print $c["srv_name"]; exit }'
}
each_lb() { # each_lb FUNC: FUNC HOST PORT SLOT for every load balancer
  [ "$lbs" = - ] && return 0
  for t in $(echo "$lbs" | tr , ' '); do
    h=@{t%:*}; p=@{t##*:}; s=$(slot "$h" "$p")
    if [ -z "$s" ]; then say "load balancer $h: no server $addr:$port in backend $be (not drained there)"; continue; fi
    "$1" "$h" "$p" "$s"
  done
}
lb_drain() {
  api "$1" "$2" "set server $be/$3 state drain" >/dev/null
  end=$(( $(date +%s) + draintmo ))
  while :; do
    cur=$(api "$1" "$2" "show stat" | awk -F, -v b="$be" -v s="$3" '$1 == b && $2 == s { print $5 }')
    [ "@{cur:-0}" = 0 ] && break
    if [ "$(date +%s)" -ge "$end" ]; then say "load balancer $1: $cur request(s) still in flight after @{draintmo}s; stopping anyway"; break; fi
    sleep 0.2
  done
}
lb_ready() {
  api "$1" "$2" "set server $be/$3 state ready" >/dev/null
  # Back in rotation only counts once HAProxy's own check sees it up (srv_op_state 2).
  end=$(( $(date +%s) + deadline ))
  while :; do
    up=$(api "$1" "$2" "show servers state $be" | awk -v s="$3" '
      /^# be_id/ { for (i = 2; i <= NF; i++) c[$i] = i - 1; next } ("srv_name" in c) && $c["srv_name"] == s { print $c["srv_op_state"] }')
    [ "$up" = 2 ] && return 0
    if [ "$(date +%s)" -ge "$end" ]; then say "load balancer $1: server $3 not up in HAProxy after @{deadline}s"; return 1; fi
    sleep 0.2
  done
}
drain() {
  touch "$st.drained"
  [ "$consul" = 1 ] && { consul maint -enable -service="$id" -reason "rtctl rollout" >/dev/null 2>&1 || say "consul maintenance on failed"; }
  each_lb lb_drain
}
undrain() {
  each_lb lb_ready
  [ "$consul" = 1 ] && { consul maint -disable -service="$id" >/dev/null 2>&1 || true; }
  rm -f "$st.drained"
}

check_once() {
  case "$check" in
    http:*)
      path=@{check#http:}
      out=$(timeout "$tmo" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1; printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$1" >&3; cat <&3' "$port" "$path" 2>/dev/null | sed -n 1p | tr -d '\r')
      case "$out" in "HTTP/"*" 2"[0-9][0-9]*) return 0;; esac
      last="GET http://127.0.0.1:$port$path answered: @{out:-nothing (connection refused or timed out)}"; return 1;;
    *)
      timeout "$tmo" bash -c ': > "/dev/tcp/127.0.0.1/$0"' "$port" 2>/dev/null && return 0
      last="TCP connect to 127.0.0.1:$port: refused or timed out"; return 1;;
  esac
}
# (The whole answer is read: closing early would reset the connection and litter the service's log.)
# THRESHOLD consecutive passes within DEADLINE seconds.
healthy() {
  end=$(( $(date +%s) + deadline )); ok=0
  while [ "$(date +%s)" -lt "$end" ]; do
    if check_once; then ok=$((ok + 1)); [ "$ok" -ge "$thr" ] && return 0; else ok=0; fi
    sleep "$ival"
  done
  return 1
}
switch() { ln -sfn "$dir/releases/$1" "$inst.tmp" && mv -T "$inst.tmp" "$inst"; }
start() {
  [ "$(systemctl show -p NeedDaemonReload --value "$unit" 2>/dev/null)" = yes ] && systemctl daemon-reload
  systemctl enable --quiet "$unit" 2>/dev/null; systemctl reset-failed "$unit" 2>/dev/null; systemctl start "$unit"
}
journal() { journalctl -u "$unit" -n 10 --no-pager -o cat 2>/dev/null | sed 's/^/    | /'; }

running=$(readlink "$inst" 2>/dev/null | sed 's|.*/||')
active=$(systemctl is-active "$unit" 2>/dev/null)

if [ "$mode" = remove ]; then
  say "surplus instance: draining, stopping and removing it"
  drain; systemctl disable --now --quiet "$unit" 2>/dev/null
  rm -f "$inst" "$st" "$st.previous" "$st.drained"
  [ "$consul" = 1 ] && { consul services deregister -id="$id" >/dev/null 2>&1 || say "consul: deregistering $id failed"; }
  finish 0
fi
case "$mode" in
  rollback)
    ver=$(cat "$st.previous" 2>/dev/null)
    [ -n "$ver" ] || { say "no previous release recorded: nothing to roll back to"; finish 1; } ;;
  restart) ver=@{running:-$ver} ;;
esac
[ -d "$dir/releases/$ver" ] || { say "release $ver is not installed in $dir/releases"; finish 1; }

[ "$active" = active ] && { say "draining"; drain; }
say "stopping (running @{running:-nothing}, $active)"
systemctl stop "$unit"
switch "$ver"
say "starting $ver"
start
if healthy; then
  echo "$ver $hash" > "$st"
  [ -n "$running" ] && [ "$running" != "$ver" ] && echo "$running" > "$st.previous"
  undrain
  say "healthy on $ver"
  [ "$pause" != 0 ] && sleep "$pause"
  finish 0
fi

say "FAILED: health check ($check) did not pass @{thr} time(s) in a row within @{deadline}s; last result: $last"
say "last log lines of $unit:"; journal
if [ "$onfail" = rollback ] && [ -n "$running" ] && [ "$running" != "$ver" ] && [ -d "$dir/releases/$running" ]; then
  say "rolling back to $running"
  systemctl stop "$unit"; switch "$running"; start
  if healthy; then
    undrain; say "rolled back: healthy on $running and back in rotation"
  else
    say "STILL UNHEALTHY after rolling back to $running ($last): left drained"
  fi
else
  systemctl stop "$unit"
  say "left stopped and drained on $ver (on_failure: $onfail)"
fi
finish 1
`.replaceAll('@{', '$' + '{');
