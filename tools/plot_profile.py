#!/usr/bin/python3
"""Draw a heinfer encrypted-run profile (`heinfer run ... --profile OUT.json`).

    /usr/bin/python3 tools/plot_profile.py PROFILE.json OUT.png

Called by `heinfer profile plot`. The JSON layout is documented in src/runtime/profile.h.
Two panels: (a) memory over time per tier (DRAM, PMEM/file tier) and the sampled RssAnon,
from "timeline", with layer boundaries; (b) time per layer (bars, from "layers", coloured
by op). Uses Debian's matplotlib (Agg backend, no display). The PNG is written
atomically (temporary file in the same directory + rename).

Exit status: 0 on success; 2 for a missing, unreadable or malformed profile (the message
names the file and the offending field); 1 for other errors (e.g. the output directory
is not writable).
"""

import json
import math
import os
import sys
import tempfile


class ProfileError(Exception):
    pass


def _number(obj, key, where):
    if key not in obj:
        raise ProfileError(f"{where}: missing field '{key}'")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ProfileError(f"{where}: field '{key}' must be a finite number, got {v!r}")
    return float(v)


def load_profile(path):
    """Reads and checks the fields the plot needs. Raises ProfileError."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            p = json.load(f)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file")
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: not valid JSON: {e}")
    if not isinstance(p, dict) or p.get("format") != "heinfer-profile":
        raise ProfileError(f"{path}: not a heinfer profile (expected \"format\": \"heinfer-profile\")")
    if p.get("version") != 1:
        raise ProfileError(f"{path}: unsupported profile version {p.get('version')!r} (expected 1)")
    layers = p.get("layers")
    if not isinstance(layers, list):
        raise ProfileError(f"{path}: 'layers' must be a list")
    timeline = p.get("timeline")
    if not isinstance(timeline, list):
        raise ProfileError(f"{path}: 'timeline' must be a list")
    out_layers = []
    for i, layer in enumerate(layers):
        where = f"{path}: layers[{i}]"
        if not isinstance(layer, dict):
            raise ProfileError(f"{where}: must be an object")
        out_layers.append({
            "name": str(layer.get("name", f"#{i}")),
            "op": str(layer.get("op", "?")),
            "start": _number(layer, "start", where),
            "seconds": _number(layer, "seconds", where),
        })
    out_timeline = []
    for i, s in enumerate(timeline):
        where = f"{path}: timeline[{i}]"
        if not isinstance(s, dict):
            raise ProfileError(f"{where}: must be an object")
        out_timeline.append({k: _number(s, k, where) for k in ("t", "dram_bytes", "pmem_bytes", "rss_anon_bytes")})
    out_timeline.sort(key=lambda s: s["t"])
    return p, out_layers, out_timeline


def plot(p, layers, timeline, out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gib = 1024.0 ** 3
    fig, (ax_mem, ax_time) = plt.subplots(2, 1, figsize=(12, 8), gridspec_kw={"height_ratios": [3, 2]})
    title = os.path.basename(str(p.get("model", "")))
    params = p.get("params") if isinstance(p.get("params"), dict) else {}
    memory = p.get("memory") if isinstance(p.get("memory"), dict) else {}
    sub = []
    if "batch" in p:
        sub.append(f"batch {p['batch']}")
    if "n" in params:
        sub.append(f"N={params['n']}")
    if "policy" in memory:
        sub.append(f"policy {memory['policy']}")
    if memory.get("dram_budget"):
        sub.append(f"DRAM budget {memory['dram_budget'] / gib:.2f} GiB")
    if "seconds" in p:
        sub.append(f"{p['seconds']:.1f} s")
    fig.suptitle(f"{title}  ({', '.join(sub)})" if sub else title)

    t = [s["t"] for s in timeline]
    ax_mem.plot(t, [s["dram_bytes"] / gib for s in timeline], label="DRAM (store)", color="tab:blue")
    ax_mem.plot(t, [s["pmem_bytes"] / gib for s in timeline], label="PMEM / file tier", color="tab:orange")
    ax_mem.plot(t, [s["rss_anon_bytes"] / gib for s in timeline], label="RssAnon (sampled)",
                color="tab:gray", linestyle="--")
    if memory.get("dram_budget"):
        ax_mem.axhline(memory["dram_budget"] / gib, color="tab:red", linewidth=0.8, label="DRAM budget")
    for layer in layers:
        ax_mem.axvline(layer["start"], color="0.85", linewidth=0.5, zorder=0)
    ax_mem.set_xlabel("time since the run started (s)")
    ax_mem.set_ylabel("GiB")
    ax_mem.set_title("(a) memory over time per tier")
    ax_mem.legend(loc="upper right", fontsize="small")
    ax_mem.grid(True, alpha=0.3)

    ops = sorted({layer["op"] for layer in layers})
    cmap = plt.get_cmap("tab10")
    colour = {op: cmap(i % 10) for i, op in enumerate(ops)}
    x = list(range(len(layers)))
    ax_time.bar(x, [layer["seconds"] for layer in layers], color=[colour[layer["op"]] for layer in layers])
    ax_time.set_xlabel("layer (graph order)")
    ax_time.set_ylabel("seconds")
    ax_time.set_title("(b) time per layer")
    if len(layers) <= 40:
        ax_time.set_xticks(x)
        ax_time.set_xticklabels([layer["name"][-18:] for layer in layers], rotation=70, fontsize=6, ha="right")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[op]) for op in ops]
    if handles:
        ax_time.legend(handles, ops, fontsize="x-small", ncol=min(len(ops), 6), loc="upper right")
    ax_time.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()

    directory = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(prefix=".plot_profile.", suffix=".png", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)


def main(argv):
    if len(argv) != 3:
        print("usage: plot_profile.py PROFILE.json OUT.png", file=sys.stderr)
        return 2
    try:
        p, layers, timeline = load_profile(argv[1])
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        plot(p, layers, timeline, argv[2])
    except OSError as e:
        print(f"error: cannot write '{argv[2]}': {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {argv[2]} ({len(layers)} layers, {len(timeline)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
