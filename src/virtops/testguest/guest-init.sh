#!/bin/sh
# /init of the virtops test guest (busybox sh).
#
# The initramfs also links this file as /bin/vo-report and /bin/vo-dhcp-event,
# so one script holds everything and the report is produced by the same code
# at boot, by the hotplug watcher and on demand. The report format is defined
# in virtops/lab/guest.py (module docstring); parse_report() there must agree.

RUN=/run/virtops                   # runtime state, one file per NIC
LEASES=$RUN/lease                  # "ip/prefix router server", written by the DHCP hook
DHCP_HOOK=/bin/vo-dhcp-event
MODULE_LIST=/etc/virtops/modules   # absolute .ko paths, dependencies first
WATCH_INTERVAL=2

# Print the value of KEY=VALUE on the kernel command line (last one wins).
cmdline_value() {
    value=
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1"=*) value=${word#*=} ;; esac
    done
    echo "$value"
}

# Ethernet interfaces only: lo and tunnel devices can't take a DHCP lease.
list_nics() {
    for dev in /sys/class/net/*; do
        [ "${dev##*/}" = lo ] && continue
        [ "$(cat "$dev/type" 2>/dev/null)" = 1 ] && echo "${dev##*/}"
    done
}

disk_lines() {
    for dev in /sys/block/*; do
        name=${dev##*/}
        case "$name" in ram* | loop* | '*') continue ;; esac
        sectors=$(cat "$dev/size" 2>/dev/null) || continue
        echo "VIRTOPS disk $name $((sectors * 512))"
    done
}

nic_lines() {
    for nic in $(list_nics); do
        ip=none router=none server=none
        [ -f "$LEASES/$nic" ] && read -r ip router server <"$LEASES/$nic"
        echo "VIRTOPS nic $nic mac=$(cat "/sys/class/net/$nic/address")" \
            "ip=$ip router=$router server=$server"
    done
}

# Routers named in the nic lines of report file $1 (so pings match the leases
# shown), then virtops.ping targets, without duplicates.
ping_targets() {
    {
        sed -n 's/^VIRTOPS nic .* router=\([^ ]*\) .*/\1/p' "$1"
        cmdline_value virtops.ping | tr , '\n'
    } | awk 'NF && $0 != "none" && !seen[$0]++'
}

# Subshell body: `wait` must not wait for DHCP clients started by the caller.
# Targets are pinged in parallel so unreachable ones cost ~3 s in total.
ping_lines() (
    results=$(mktemp -d)
    count=0
    for target in $(ping_targets "$1"); do
        count=$((count + 1))
        (
            result=fail
            ping -c 2 -W 2 "$target" >/dev/null 2>&1 && result=ok
            echo "VIRTOPS ping $target $result" >"$results/$count"
        ) &
    done
    wait
    index=1
    while [ "$index" -le "$count" ]; do
        cat "$results/$index"
        index=$((index + 1))
    done
    rm -rf "$results"
)

state_lines() {
    disk_lines
    nic_lines
}

# The block is assembled first and written with one cat, so a report printed
# by the watcher can't interleave line by line with one asked for by a user.
# The empty first line keeps VIRTOPS-BEGIN off a shell prompt left on screen.
print_report() {
    report=$(mktemp)
    {
        echo
        echo VIRTOPS-BEGIN
        state_lines
    } >"$report"
    ping_lines "$report" >>"$report"
    echo VIRTOPS-END >>"$report"
    cat "$report"
    rm -f "$report"
}

# udhcpc event hook: configure the address and record the lease for reports.
dhcp_event() {
    lease=$LEASES/$interface
    case "$1" in
    deconfig)
        rm -f "$lease"
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound | renew)
        address=$ip/${mask:-$(ipcalc -p "$ip" "$subnet" | cut -d= -f2)}
        old_address=none
        [ -f "$lease" ] && read -r old_address _rest <"$lease"
        if [ "$address" != "$old_address" ]; then
            ip -4 addr flush dev "$interface"
            ip addr add "$address" dev "$interface"
        fi
        set -- $router
        gateway=${1:-none}
        # One default route per NIC; the ifindex metric keeps them distinct.
        [ "$gateway" != none ] && ip route add default via "$gateway" dev "$interface" \
            metric "$(cat "/sys/class/net/$interface/ifindex")" 2>/dev/null
        echo "$address $gateway ${serverid:-none}" >"$lease.new"
        mv "$lease.new" "$lease"
        ;;
    esac
    return 0
}

# Start udhcpc for one NIC in the background and record its pid. Without a
# lease it gives up after ~5 s (-n), so a NIC without DHCP delays boot only
# briefly; the watcher retries it later. -f: it never daemonizes, so the pid
# recorded here stays its pid. (A client that forks away on its lease, and
# writes a new pid then, can outlive a stop_dhcp that killed the old pid: it
# holds the lease while its lease file is gone, and the NIC reports no address
# until the renewal half an hour later.) The subshell exits at once, so the
# client is reparented to init, which reaps it.
start_dhcp() {
    (
        udhcpc -f -i "$1" -s "$DHCP_HOOK" -t 5 -T 1 -n $DHCP_EXTRA_ARGS \
            >"$RUN/udhcpc.$1.log" 2>&1 </dev/null &
        echo $! >"$RUN/udhcpc.$1.pid"
    )
}

dhcp_running() {
    pid=$(cat "$RUN/udhcpc.$1.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null
}

stop_dhcp() {
    pid=$(cat "$RUN/udhcpc.$1.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
    rm -f "$RUN/udhcpc.$1.pid" "$LEASES/$1"
}

# "ifindex carrier" identifies what is plugged in under a NIC name right now.
nic_identity() {
    ip link set "$1" up
    carrier=$(cat "/sys/class/net/$1/carrier" 2>/dev/null)
    echo "$(cat "/sys/class/net/$1/ifindex") ${carrier:-0}"
}

# A new ifindex means the NIC was unplugged and another one plugged in under
# the same name; carrier 0 -> 1 means its cable was moved. Either way the old
# lease may belong to another network.
needs_fresh_lease() {
    set -- $1 $2
    [ $# -eq 4 ] || return 1
    [ "$1" != "$3" ] || { [ "$2" = 0 ] && [ "$4" = 1 ]; }
}

# At boot: every NIC asks at once; go on when each has a lease or its client gave up.
dhcp_all_nics() {
    for nic in $(list_nics); do
        nic_identity "$nic" >"$RUN/nic.$nic"
        start_dhcp "$nic"
    done
    for nic in $(list_nics); do
        while [ ! -f "$LEASES/$nic" ] && dhcp_running "$nic"; do
            sleep 0.2
        done
    done
}

sweep_nics() {
    for nic in $(list_nics); do
        known=$(cat "$RUN/nic.$nic" 2>/dev/null)
        current=$(nic_identity "$nic")
        echo "$current" >"$RUN/nic.$nic"
        if needs_fresh_lease "$known" "$current"; then
            stop_dhcp "$nic"
            ip -4 addr flush dev "$nic"
        fi
        dhcp_running "$nic" || start_dhcp "$nic"
    done
    for state in "$RUN"/nic.*; do
        nic=${state#"$RUN"/nic.}
        [ -f "$state" ] && [ ! -e "/sys/class/net/$nic" ] || continue
        stop_dhcp "$nic"
        rm -f "$state"
    done
}

watch_nics_and_disks() {
    last=$(state_lines)
    while sleep "$WATCH_INTERVAL"; do
        sweep_nics
        current=$(state_lines)
        [ "$current" = "$last" ] && continue
        last=$current
        print_report
    done
}

# The screen (VGA text console, tty1): a banner, the report, and a shell of its own, respawned.
show_on_screen() {
    {
        echo "virtops test guest $(uname -r) on the screen"
        state_lines
    } >/dev/tty1
    (while :; do setsid sh -c 'exec sh </dev/tty1 >/dev/tty1 2>&1'; done) &
}

load_modules() {
    while read -r module; do
        insmod "$module" || echo "virtops: cannot load $module" >&2
    done <"$MODULE_LIST"
}

boot() {
    # --install finds busybox through /proc/self/exe, so mount /proc first.
    /bin/busybox mount -t proc proc /proc
    /bin/busybox --install -s
    export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    mkdir -p "$LEASES"
    load_modules
    # Only emergencies from here on: kernel lines must not split report lines.
    dmesg -n 1
    ip link set lo up

    mode=$(cmdline_value virtops.mode)
    case "$mode" in
    shell) ;;
    *) mode=report DHCP_EXTRA_ARGS=-q ;; # nothing to renew: the VM stops soon
    esac
    dhcp_all_nics
    print_report
    [ "$(cmdline_value virtops.screen)" = 1 ] && show_on_screen

    if [ "$mode" = report ]; then
        sync
        poweroff -f
    fi
    watch_nics_and_disks </dev/null &
    # init must never exit (the kernel would panic), so respawn the shell.
    while :; do
        setsid cttyhack sh
    done
}

case "${0##*/}" in
vo-report) print_report ;;
vo-dhcp-event) dhcp_event "$1" ;;
*) boot ;;
esac
