#!/usr/bin/python3
"""Turns the raw results of scripts/bench into: a table on stdout, Benchmarks/results/latest.json
(everything, with the machine), Benchmarks/results/benchmarks.svg (the README's plot, written
directly as SVG) and the generated part of BENCHMARKS.md (between the `bench:begin`/`bench:end`
markers; the prose around it is kept).

    /usr/bin/python3 Benchmarks/report.py --iso iso.json --scale scale.json --real real.json \
        --machine machine.json --command 'sudo scripts/bench' --out-dir Benchmarks/results --markdown BENCHMARKS.md
Any of --iso/--scale/--real may be missing (that part is then left out).
"""

from __future__ import annotations

import argparse
import json
import math
import os


def load(path):
    if path and os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path) as f:
            return json.load(f)
    return None


def f(x, digits=2):
    if x is None:
        return "n/a"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return f"{x:,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def sections(iso, scale, real, machine, command):
    md = []
    md.append("### Machine\n")
    md.append(table(["what", "value"], [[k, f"`{v}`"] for k, v in machine.items()]))
    md.append(f"\nCommand: `{command}` (everything below; raw figures in `Benchmarks/results/latest.json`).\n")
    if iso:
        md.append("### 1. Image building: in process vs genisoimage vs xorriso\n")
        md.append("Inputs in, image file out, counted the same way for all three (see *What is measured*); then the "
                  "same with the image and its directory flushed to disk (`fsync`), for both in process and genisoimage; "
                  f"{iso['cases'][0]['runs']} interleaved runs per way and case; milliseconds, median / p99.\n")
        rows = []
        for c in iso["cases"]:
            def mp(way):
                return f"{f(c[way]['median'])} / {f(c[way]['p99'])}" if way in c else "n/a"
            durable = "ratio_genisoimage_over_in_process_durable" in c
            rows.append([c["case"], mp("in-process"), mp("genisoimage"), mp("xorriso"),
                         f"**{c['ratio_genisoimage_over_in_process']:.1f}×**", f"**{c['ratio_xorriso_over_in_process']:.0f}×**",
                         mp("in-process-durable"), mp("genisoimage-durable"),
                         f"**{c['ratio_genisoimage_over_in_process_durable']:.1f}×**" if durable else "n/a",
                         f(c["in-process"]["image_bytes"])])
        md.append(table(["inputs", "in process", "genisoimage", "xorriso", "genisoimage / in process",
                         "xorriso / in process", "in process, flushed", "genisoimage, flushed",
                         "genisoimage / in process, both flushed", "image bytes (ours)"], rows))
        md.append("")
    if real and "pipeline" in real:
        md.append("### 2. Pipeline phases on real QEMU (a metadata change, waited for, per run)\n")
        rows = []
        for key, r in real["pipeline"].items():
            def mp(field):
                s = r.get(field, {})
                return f"{f(s.get('median'))} / {f(s.get('p99'))}" if s.get("n") else "n/a"
            rows.append([f"`{key}`", r["total_ms"]["n"], mp("resolve_ms"), mp("eject_ms"), mp("build_ms"), mp("insert_ms"),
                         mp("persist_ms"), mp("record_ms"), mp("total_ms"), f"**{mp('event_to_inserted_ms')}**",
                         mp("event_to_applied_ms"), mp("external_set_to_medium_in_ms")])
        md.append(table(["bus / device mode", "runs", "resolve", "eject / detach", "build", "insert / attach (live)",
                         "persist (config)", "record (applied state)", "total (run)", "event → inserted",
                         "event → applied (run over)", "set-metadata call → medium in (outside view)"], rows))
        md.append("\nAll in ms, median / p99.\n")
    if real and "migration" in real:
        m = real["migration"]
        md.append("### 3. Migration overhead (the paper's measure)\n")
        rows = [
            ["plain migration (no recontextd)", f(m["plain_done_ms"]["median"]), f(m["plain_done_ms"]["p99"]), "", ""],
            ["with recontextd: migration returned", f(m["with_migrate_returned_ms"]["median"]), f(m["with_migrate_returned_ms"]["p99"]),
             f"{m['ratio_returned_median']:.3f}", ""],
            ["with recontextd: new context inserted on the destination", f(m["with_inserted_ms"]["median"]), f(m["with_inserted_ms"]["p99"]),
             f"{m['ratio_inserted_over_plain_median']:.3f}", ""],
            ["with recontextd: both done (max of the two)", f(m["with_done_ms"]["median"]), f(m["with_done_ms"]["p99"]),
             f"**{m['ratio_done_median']:.3f}**", "1.18 (paper)"],
            ["RESUMED/MIGRATED on the destination → inserted", f(m["resumed_to_inserted_ms"]["median"]), f(m["resumed_to_inserted_ms"]["p99"]), "", ""],
        ]
        md.append(table(["from the start of the migration to ...", "median ms", "p99 ms", "ratio to plain (medians)", "compare"], rows))
        md.append(f"\n{m['plain_done_ms']['n']} plain and {m['with_done_ms']['n']} recontextd migrations "
                  "(interleaved pairs, both directions).\n")
    if real and "storms" in real:
        s = real["storms"]
        md.append("### 4. Storms\n")
        rows = []
        for key, label in [("reload", "host variable changed + SIGHUP"), ("metadata", "metadata change on every VM at once")]:
            r = s[key]
            rows.append([label, s["vms"], f(r["converged_s"]), f(r["per_domain_inserted_ms"].get("median")),
                         f(r["per_domain_inserted_ms"].get("p99")), r["events_lost"], f(r["daemon_vmhwm_kib"] / 1024, 1)])
        ms_ = s["migration_storm"]
        rows.append([f"VMs arriving together by live migration (all started at once)", ms_["vms"], f(ms_["converged_s"]),
                     f(ms_["per_domain_start_to_inserted_ms"].get("median")), f(ms_["per_domain_start_to_inserted_ms"].get("p99")),
                     ms_["events_lost"], f(ms_["destination_daemon_vmhwm_kib"] / 1024, 1)])
        md.append(table(["storm", "VMs", "all converged (s)", "per domain median (ms)", "p99 (ms)", "lost", "daemon peak RSS (MiB, VmHWM)"], rows))
        md.append(f"\nThe migration storm's own figures: the migrations returned after {f(ms_['all_migrations_returned_s'])} s; "
                  f"RESUMED/MIGRATED → inserted per domain: median {f(ms_['per_domain_resumed_to_inserted_ms'].get('median'))} ms, "
                  f"p99 {f(ms_['per_domain_resumed_to_inserted_ms'].get('p99'))} ms; migration errors: {len(ms_['migration_errors'])}.\n")
    if scale:
        md.append("### 4b. Bookkeeping at scale (libvirt's test driver, in one process)\n")
        rows = [
            ["define + start domains (with context metadata)", f"{f(scale['create_ms'])} ms", f"{scale['events_received']} events received"],
            ["desired state (snapshot + parse + render), all domains", f"{f(scale['desired_state_ms_total'])} ms",
             f"{f(scale['desired_state_ms_per_domain'])} ms per domain"],
            ["image builds (atomic write to files, flushed later as the daemon does), one per domain", f"{f(scale['image_build_ms_total'])} ms",
             f"median {f(scale['image_build_ms']['median'])} ms, p99 {f(scale['image_build_ms']['p99'])} ms"],
            ["reconcile of every domain through DomainCoordinator + ContextPipeline",
             f"{f(scale['reconcile_all_ms'])} ms", ", ".join(f"{k}: {v}" for k, v in scale["reconcile_outcomes"].items())],
            ["resident memory, idle, with the domains", f"{f(scale['rss_kib_idle_with_domains'] / 1024, 1)} MiB", f"peak {f(scale['hwm_kib_after_bookkeeping'] / 1024, 1)} MiB"],
        ]
        md.append(table([f"{scale['domains']} managed domains", "time / memory", "detail"], rows))
        md.append("")
    md.append("### 5. Footprint\n")
    rows = []
    if scale:
        rows.append([f"RSS after the first {scale['domains']:,} pipeline runs → after {scale['leak_runs']:,} (leak check, in process)",
                     f"{f(scale['rss_kib_after_first_1000_runs'] / 1024, 1)} → {f(scale['rss_kib_after_all_runs'] / 1024, 1)} MiB "
                     f"({scale['rss_growth_kib_first_to_last']:+,} KiB)"])
    if real and "storms" in real:
        idle = real["storms"]["idle"]
        rows.append([f"`recontextd run` idle on a real host with {idle['real_host']['managed_vms']} managed VMs: CPU in {f(idle['seconds'], 0)} s",
                     f"**{f(idle['real_host']['cpu_ms'])} ms** (utime+stime, /proc/PID/stat), RSS {f(idle['real_host']['rss_kib_end'] / 1024, 1)} MiB"])
        tn = idle["test_node"]
        rows.append([f"`recontextd run` with {tn['domains']:,} managed domains (test driver node file): idle RSS; CPU in {f(idle['seconds'], 0)} s",
                     f"RSS **{f(tn['rss_kib_end'] / 1024, 1)} MiB** (peak {f(tn['vmhwm_kib'] / 1024, 1)} MiB), CPU {f(tn['cpu_ms'])} ms; "
                     f"first reconcile of all {tn['domains']:,}: {f(tn['first_reconcile_s'])} s"])
    md.append(table(["what", "figure"], rows))
    return "\n".join(md) + "\n"


def svg(iso, real, path):
    W, H = 960, 330
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>']
    colors = {"in-process": "#2b7bb9", "genisoimage": "#e69f00", "xorriso": "#999999", "plain": "#999999", "with": "#2b7bb9"}

    def text(x, y, s, anchor="start", size=12, weight="normal", fill="#222"):
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}" fill="{fill}">{s}</text>')

    # Panel 1: image build medians, log scale.
    if iso:
        x0, y0, w, h = 60, 40, 420, 230
        text(x0, 22, "1. Image build, inputs in → image file out (median ms, log scale)", weight="bold")
        lo, hi = 0.1, 1000.0
        def ly(v):
            return y0 + h - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * h
        for v in [0.1, 1, 10, 100, 1000]:
            parts.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{ly(v):.1f}" y2="{ly(v):.1f}" stroke="#ddd"/>')
            text(x0 - 6, ly(v) + 4, f"{v:g}", anchor="end", size=10)
        group = w / len(iso["cases"])
        for i, c in enumerate(iso["cases"]):
            for j, tool in enumerate(["in-process", "genisoimage", "xorriso"]):
                v = c[tool]["median"]
                bx = x0 + i * group + 18 + j * (group - 36) / 3
                bw = (group - 36) / 3 - 4
                parts.append(f'<rect x="{bx:.1f}" y="{ly(v):.1f}" width="{bw:.1f}" height="{y0 + h - ly(v):.1f}" fill="{colors[tool]}"/>')
                text(bx + bw / 2, ly(v) - 3, f(v), anchor="middle", size=9)
            text(x0 + i * group + group / 2, y0 + h + 16, c["case"], anchor="middle", size=11)
        for j, tool in enumerate(["in-process", "genisoimage", "xorriso"]):
            parts.append(f'<rect x="{x0 + 10 + j * 120}" y="{y0 + h + 28}" width="10" height="10" fill="{colors[tool]}"/>')
            text(x0 + 24 + j * 120, y0 + h + 37, "recontextd (in process)" if tool == "in-process" else tool, size=10)
    # Panel 2: migration, and event -> inserted.
    if real and "migration" in real:
        m = real["migration"]
        x0, y0, w = 560, 40, 360
        text(x0, 22, "3. Live migration: start → done (median ms)", weight="bold")
        bars = [("plain migration", m["plain_done_ms"]["median"], "plain"),
                ("with recontextd (context inserted)", m["with_done_ms"]["median"], "with")]
        top = max(v for _, v, _ in bars) * 1.15
        for i, (label, v, c) in enumerate(bars):
            y = y0 + 10 + i * 34
            parts.append(f'<rect x="{x0}" y="{y}" width="{w * v / top:.1f}" height="22" fill="{colors[c]}"/>')
            text(x0 + w * v / top + 4, y + 15, f"{v:.0f} ms", size=11)
            text(x0 + 4, y + 15, label, size=11, fill="white")
        text(x0, y0 + 92, f"ratio {m['ratio_done_median']:.3f} (the 2012 prototype: 1.18)", size=11)
    if real and "pipeline" in real:
        x0, y0, w = 560, 170, 360
        text(x0, y0 - 12, "2. Event → image inserted, real QEMU (median ms)", weight="bold")
        items = [(k, r["event_to_inserted_ms"].get("median") or 0) for k, r in real["pipeline"].items()]
        top = max(40.0, max(v for _, v in items)) * 1.15
        for i, (k, v) in enumerate(items):
            y = y0 + i * 26
            parts.append(f'<rect x="{x0 + 130}" y="{y}" width="{(w - 170) * v / top:.1f}" height="18" fill="{colors["with"]}"/>')
            text(x0 + 124, y + 13, k, anchor="end", size=10)
            text(x0 + 134 + (w - 170) * v / top, y + 13, f"{v:.1f}", size=10)
        tx = x0 + 130 + (w - 170) * 40 / top
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y0 - 4}" y2="{y0 + 26 * len(items)}" stroke="#c00" stroke-dasharray="4 3"/>')
        text(tx, y0 + 26 * len(items) + 12, "target 40 ms", anchor="middle", size=10, fill="#c00")
    parts.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(parts) + "\n")


def console(iso, scale, real):
    lines = []
    if iso:
        lines.append("1. image build (median / p99 ms)      in process        genisoimage       xorriso        geniso/in  xorriso/in")
        for c in iso["cases"]:
            lines.append(f"   {c['case']:<34} {c['in-process']['median']:7.2f} / {c['in-process']['p99']:7.2f}  "
                         f"{c['genisoimage']['median']:7.2f} / {c['genisoimage']['p99']:7.2f}  {c['xorriso']['median']:6.1f} / {c['xorriso']['p99']:6.1f}  "
                         f"{c['ratio_genisoimage_over_in_process']:8.1f}x  {c['ratio_xorriso_over_in_process']:8.0f}x")
    if real and "pipeline" in real:
        lines.append("2. pipeline (median ms)          resolve  eject  build  insert persist record  total  event->inserted (p99)")
        for k, r in real["pipeline"].items():
            g = lambda n: r.get(n, {}).get("median") or 0
            lines.append(f"   {k:<28} {g('resolve_ms'):7.2f} {g('eject_ms'):6.2f} {g('build_ms'):6.2f} {g('insert_ms'):7.2f} "
                         f"{g('persist_ms'):7.2f} {g('record_ms'):6.2f} "
                         f"{g('total_ms'):6.2f}  {g('event_to_inserted_ms'):6.2f} ({r['event_to_inserted_ms'].get('p99') or 0:.2f})")
    if real and "migration" in real:
        m = real["migration"]
        lines.append(f"3. migration: plain {m['plain_done_ms']['median']:.0f} ms, with recontextd {m['with_done_ms']['median']:.0f} ms "
                     f"(inserted at {m['with_inserted_ms']['median']:.0f} ms): ratio {m['ratio_done_median']:.3f} (paper 1.18)")
    if real and "storms" in real:
        s = real["storms"]
        for k in ["reload", "metadata"]:
            lines.append(f"4. storm {k}: {s[k]['domains_converged']}/{s['vms']} in {s[k]['converged_s']:.2f} s, lost {s[k]['events_lost']}, "
                         f"HWM {s[k]['daemon_vmhwm_kib'] / 1024:.1f} MiB")
        ms_ = s["migration_storm"]
        lines.append(f"4. migration storm: {ms_['domains_converged']}/{ms_['vms']} in {ms_['converged_s']:.2f} s, lost {ms_['events_lost']}")
        idle = s["idle"]
        lines.append(f"5. idle {idle['seconds']:.0f} s: CPU {idle['real_host']['cpu_ms']:.0f} ms (real host), "
                     f"{idle['test_node']['cpu_ms']:.0f} ms ({idle['test_node']['domains']} test domains, RSS {idle['test_node']['rss_kib_end'] / 1024:.1f} MiB)")
    if scale:
        lines.append(f"4b/5. test driver, {scale['domains']} domains: reconcile {scale['reconcile_all_ms']:.0f} ms; RSS idle "
                     f"{scale['rss_kib_idle_with_domains'] / 1024:.1f} MiB; {scale['leak_runs']} runs: "
                     f"{scale['rss_growth_kib_first_to_last']:+d} KiB after the first {scale['domains']}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iso"); p.add_argument("--scale"); p.add_argument("--real")
    p.add_argument("--machine", required=True); p.add_argument("--command", required=True)
    p.add_argument("--out-dir", required=True); p.add_argument("--markdown")
    a = p.parse_args()
    iso, scale, real, machine = load(a.iso), load(a.scale), load(a.real), load(a.machine)
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "latest.json"), "w") as fh:
        json.dump({"machine": machine, "command": a.command, "iso": iso, "scale": scale, "real": real}, fh, indent=1)
    svg(iso, real, os.path.join(a.out_dir, "benchmarks.svg"))
    print(console(iso, scale, real))
    if a.markdown:
        body = sections(iso, scale, real, machine, a.command)
        begin, end = "<!-- bench:begin (generated by scripts/bench; edits here are overwritten) -->", "<!-- bench:end -->"
        text = open(a.markdown).read() if os.path.exists(a.markdown) else f"# Benchmarks\n\n{begin}\n{end}\n"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1]
            text = head + begin + "\n" + body + end + tail
        with open(a.markdown, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
