"""Draw docs/dashboard.png: the panels of the Grafana dashboard
(docs/grafana-logcaster.json), their PromQL run by a real Prometheus
against a real run of the appliance.

    sudo .venv/bin/python bench/dashboard.py [--seconds 90] [--out docs/dashboard.png]

What runs (root; everything in two network namespaces of its own, removed
afterwards): a veth pair; `logcaster run` with AF_XDP on one end, a Parquet
sink and metrics on 127.0.0.1; Debian's `prometheus` scraping it every
second into a temporary store; `logcaster replay` of the demo's sample into
the other end, at rates that step up (bounded: --seconds in all). Then each
panel's queries go to Prometheus' query_range API ($__rate_interval is 5 s,
$instance everything) and matplotlib draws them in the dashboard's layout.
Grafana itself is in neither Debian's archive nor PyPI, so it does not run
here; the queries and the layout are the dashboard's.

Needs: Debian's prometheus (apt-get install --no-install-recommends
prometheus) and matplotlib (pip install matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "docs/grafana-logcaster.json"
RATES = (20_000, 50_000, 100_000, 150_000)      # packets/s, one phase each


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*cmd: str, ns: str | None = None, **kw) -> subprocess.CompletedProcess:
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(full[:8])} ... exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def query_range(prom: str, expr: str, start: float, end: float, step: float = 2.0) -> list[dict]:
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}", timeout=30) as r:
        data = json.load(r)
    if data.get("status") != "success":
        raise RuntimeError(f"{expr}: {data}")
    return data["data"]["result"]


def legend(fmt: str, metric: dict) -> str:
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out if "{{" not in out else ""


def run(seconds: float, out: Path) -> None:
    if shutil.which("prometheus") is None:
        sys.exit("dashboard.py: needs Debian's prometheus: apt-get install --no-install-recommends prometheus")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pid = os.getpid()
    cap_ns, snd_ns = f"lcdash-c{pid}", f"lcdash-s{pid}"
    cap_if, snd_if = f"lcdc{pid % 100000}", f"lcds{pid % 100000}"
    work = Path(tempfile.mkdtemp(prefix="lcdash-"))
    metrics_port, prom_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        for ns in (cap_ns, snd_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", cap_if, "netns", cap_ns, "type", "veth", "peer", "name", snd_if, "netns", snd_ns)
        sh("ip", "-n", cap_ns, "link", "set", cap_if, "up")
        sh("ip", "-n", snd_ns, "link", "set", snd_if, "up")
        sample = work / "sample.pcap"
        sh(sys.executable, "-c", f"from appliance.sample import write_pcap; write_pcap({str(sample)!r}, 100000)",
           cwd=REPO)
        cfg = {"capture": {"backend": "afxdp", "ports": [cap_if], "udp_ports": [514]},
               "sinks": [{"type": "parquet", "path": str(work / "parquet"), "rotate_seconds": 5}],
               "dpdk": {"file_prefix": f"lcdash{pid}"},
               "metrics": {"listen": f"127.0.0.1:{metrics_port}"}, "stats_interval_s": 5}
        (work / "logcaster.yaml").write_text(json.dumps(cfg))
        appliance = subprocess.Popen(["ip", "netns", "exec", cap_ns, sys.executable, "-m", "appliance.cli.main",
                                      "run", "-c", str(work / "logcaster.yaml")], cwd=REPO,
                                     stdout=open(work / "appliance.log", "w"), stderr=subprocess.STDOUT)
        procs.append(appliance)
        # Prometheus runs in the capture namespace too: the metrics listen on its loopback.
        (work / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs: [{{job_name: logcaster, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n")
        prom = subprocess.Popen(["ip", "netns", "exec", cap_ns, "prometheus", f"--config.file={work}/prometheus.yml",
                                 f"--storage.tsdb.path={work}/tsdb", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=open(work / "prometheus.log", "w"), stderr=subprocess.STDOUT)
        procs.append(prom)
        time.sleep(8)           # appliance ready (XDP, UMEM, workers), Prometheus up
        start = time.time()
        phase = max(5.0, (seconds - 10) / len(RATES))
        for rate in RATES:
            sh(sys.executable, "-m", "appliance.cli.main", "replay", str(sample), "--iface", snd_if, "--force",
               "--pps", str(rate), "--loop", "100", "--limit", str(int(rate * phase)), ns=snd_ns, cwd=REPO,
               timeout=phase * 3 + 60)
        time.sleep(8)           # the last files complete, the last scrapes land
        end = time.time()
        # Prometheus' HTTP API, from the capture namespace (curl-free: a Python one-liner there)
        results = {}
        dash = json.loads(DASHBOARD.read_text())
        for panel in dash["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "5s").replace('instance=~"$instance"',
                                                                                 'instance=~".*"')
                code = (f"import json,sys; sys.path.insert(0,{str(REPO / 'bench')!r}); import dashboard as d; "
                        f"print(json.dumps(d.query_range('http://127.0.0.1:{prom_port}', {expr!r}, {start}, {end})))")
                results[(panel["id"], target["refId"])] = json.loads(sh(sys.executable, "-c", code, ns=cap_ns).stdout)
        appliance.send_signal(signal.SIGTERM)
        appliance.wait(120)
        draw(plt, dash, results, start, out)
        summary = (work / "appliance.log").read_text().split("summary:", 1)[-1].splitlines()[:3]
        print(f"wrote {out}: a run of {end - start:.0f} s at {', '.join(f'{r:,}' for r in RATES)} pkt/s "
              f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC); summary:{summary[0]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for ns in (cap_ns, snd_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def draw(plt, dash: dict, results: dict, start: float, out: Path) -> None:
    """The panels in the dashboard's grid (24 columns), Grafana's dark look."""
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    fig = plt.figure(figsize=(16, rows * 0.45), facecolor="#111217")
    fig.suptitle(f"{dash['title']}: the panels of docs/grafana-logcaster.json, queried from Prometheus",
                 color="#d8d9da", fontsize=12, x=0.01, y=0.995, ha="left")
    top, bottom = 0.965, 0.03           # figure fractions for the grid

    def rect(g: dict, stat: bool) -> list[float]:
        x0, w = g["x"] / 24, g["w"] / 24
        y0 = bottom + (top - bottom) * (1 - (g["y"] + g["h"]) / rows)
        h = (top - bottom) * g["h"] / rows
        pad_l = 0.006 if stat else 0.05            # room for the y tick labels
        return [x0 + pad_l, y0 + (0.012 if stat else 0.035), w - pad_l - 0.008, h - (0.03 if stat else 0.06)]

    for panel in dash["panels"]:
        g = panel["gridPos"]
        ax = fig.add_axes(rect(g, panel["type"] == "stat"), facecolor="#181b1f")
        ax.set_title(panel["title"], color="#d8d9da", fontsize=9, loc="left")
        for side in ax.spines.values():
            side.set_color("#2c3235")
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        series = [(t, s) for t in panel["targets"] for s in results[(panel["id"], t["refId"])]]
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        if panel["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            value = float(series[-1][1]["values"][-1][1]) if series else float("nan")
            maps = {m_k: m_v["text"] for m in panel["fieldConfig"]["defaults"].get("mappings", [])
                    for m_k, m_v in m.get("options", {}).items()}
            text = maps.get(f"{value:g}", f"{value:,.0f}") if value == value else "no data"
            ok = value == value and (value >= 1 or not maps)
            ax.set_facecolor("#1a7f37" if ok and maps else "#181b1f" if not maps else "#b3261e")
            ax.text(0.5, 0.4, text, color="white", fontsize=22, ha="center", va="center", transform=ax.transAxes)
            continue
        for target, s in series:
            xs = [float(t) - start for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            scale, label_unit = (1e3, "ms") if unit == "s" else (100, "%") if unit == "percentunit" else (1, "")
            ax.plot(xs, [y * scale for y in ys], linewidth=1.2, label=legend(target["legendFormat"], s["metric"]))
            if label_unit:
                ax.set_ylabel(label_unit, color="#8e8e8e", fontsize=7)
        ax.set_xlabel("seconds into the run", color="#8e8e8e", fontsize=7)
        ax.grid(color="#2c3235", linewidth=0.5)
        if series:
            ax.legend(fontsize=7, facecolor="#181b1f", edgecolor="#2c3235", labelcolor="#d8d9da", loc="upper left")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor=fig.get_facecolor())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="length of the traffic (bounded)")
    ap.add_argument("--out", type=Path, default=REPO / "docs/dashboard.png")
    args = ap.parse_args()
    run(min(args.seconds, 600.0), args.out)


if __name__ == "__main__":
    main()
