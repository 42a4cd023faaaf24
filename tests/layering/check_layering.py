#!/usr/bin/python3
"""Checks that the source folders of heinfer depend downward only (docs/architecture.md).

    /usr/bin/python3 tests/layering/check_layering.py [--root DIR] [--max-lines 600]
    /usr/bin/python3 tests/layering/check_layering.py --rules
    /usr/bin/python3 tests/layering/check_layering.py --self-test

Reads every `#include "..."` line (and `#include <layer/...>`) of src/**/*.{h,hpp,cpp,cc,inc}
and apps/**/*, maps the including file and the included path to a layer (the first path
component under src/, or `apps`) and reports every include that points up or across:

    src/memory/footprint.h:37: layer 'memory' must not include 'runtime' (runtime/encrypted_executor.h)

An included path is resolved as the compiler does for quoted includes: relative to the
including file first (`kernels/conv.h`, `../ckks/x.h`, an apps-local `commands.h`), then
against src/ (`ckks/context.h`; a generated `protocol/heinfer.grpc.pb.h` counts as
protocol). A bare name that exists nowhere counts as the includer's own folder; a path
whose first component is no folder of ours (`onnx/onnx_pb.h`) is a third-party header.

Also an error: a top-level folder under src/ that is not in LAYERS (a new folder must be
placed in the table first), a file directly in src/, and a table that is not acyclic.
With --max-lines N, a second rule: no source file in src/ has more than N lines.

Exit status: 0 clean, 1 violations, 2 usage errors.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

# ---------------------------------------------------------------------------------------
# THE RULES (the only place they live). Each layer -> the layers it may include directly.
# Inclusion is transitive (apps may include everything below protocol); within one
# folder, subfolders included, anything goes. A layer absent from a list and not
# reachable from it is forbidden: up (ckks -> runtime) or across (model <-> ckks,
# memory -> model, ring -> anything).
# ---------------------------------------------------------------------------------------
LAYERS = {
    "apps": ["session"],                  # the command-line tool
    "python": ["session"],                # the Python extension module
    "session": ["protocol", "distributed"],  # front ends' shared operations: embedded run, inspect
    "distributed": ["runtime"],           # MPI transport of distributed runs (runtime::Peers)
    "protocol": ["runtime"],              # gRPC transport, sessions, admission
    "runtime": ["plan"],                  # executes a plan; plaintext reference; client
    "plan": ["model", "ckks", "memory"],  # the EncryptedPlan, parameters, prediction
    "memory": ["ckks", "ring"],           # ciphertext store, tier, monitor (bytes only)
    "model": [],                          # ONNX import and graph passes
    "ckks": ["ring"],                     # the scheme
    "ring": [],                           # modular arithmetic, NTT, RNS, CSPRNG
}

CXX_EXTENSIONS = (".h", ".hpp", ".cpp", ".cc", ".inc")
# Files counted by --max-lines (src/ only).
LINE_LIMIT_EXTENSIONS = CXX_EXTENSIONS + (".proto",)

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*(?:"([^"]+)"|<([^>]+)>)')


# --- the table ------------------------------------------------------------------------
def table_errors(layers):
    """Problems of a layer table: unknown targets, self-edges, cycles."""
    errors = []
    for layer, targets in layers.items():
        for t in targets:
            if t not in layers:
                errors.append(f"table: layer '{layer}' lists unknown layer '{t}'")
            elif t == layer:
                errors.append(f"table: layer '{layer}' lists itself")
    if errors:
        return errors
    state = {}  # layer -> 1 on the DFS stack, 2 done
    stack = []

    def visit(layer):
        state[layer] = 1
        stack.append(layer)
        for t in layers[layer]:
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                errors.append("table: include cycle " + " -> ".join(cycle))
            elif t not in state:
                visit(t)
        stack.pop()
        state[layer] = 2

    for layer in layers:
        if layer not in state:
            visit(layer)
    return errors


def allowed_closure(layers):
    """layer -> every layer it may include (itself and everything reachable)."""
    closure = {}
    for layer in layers:
        seen, todo = {layer}, [layer]
        while todo:
            for t in layers[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        closure[layer] = seen
    return closure


def top_down(layers):
    """The layers, every one after all layers that may include it (a topological order)."""
    indegree = {layer: 0 for layer in layers}
    for targets in layers.values():
        for t in targets:
            indegree[t] += 1
    order, ready = [], [layer for layer in layers if indegree[layer] == 0]
    while ready:
        layer = ready.pop(0)
        order.append(layer)
        for t in layers[layer]:
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return order


def print_rules(layers, out=sys.stdout):
    order = top_down(layers)
    width = max(len(x) for x in layers)
    closure = allowed_closure(layers)
    print("Layers and the layers each may include directly (tests/layering/check_layering.py, LAYERS):",
          file=out)
    for layer in order:
        targets = ", ".join(layers[layer]) if layers[layer] else "(nothing of ours)"
        print(f"  {layer:<{width}} -> {targets}", file=out)
    print("Allowed includes (transitive; a folder may always include itself):", file=out)
    for layer in order:
        below = [x for x in order if x in closure[layer] and x != layer]
        print(f"  {layer:<{width}} -> {', '.join(below) if below else '(nothing of ours)'}", file=out)
    print("Everything else is forbidden (up or across).", file=out)


# --- the tree -------------------------------------------------------------------------
def rel(root, path):
    return os.path.relpath(path, root).replace(os.sep, "/")


def layer_of_path(relpath):
    """Layer of a path relative to the root: 'apps', 'python', src/<layer>/..., else None."""
    parts = relpath.split("/")
    if parts[0] in ("apps", "python") and len(parts) > 1:
        return parts[0]
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    return None


def source_files(root):
    """(relative path, absolute path) of every file checked for includes."""
    files = []
    for top, exts in (("src", CXX_EXTENSIONS), ("apps", None), ("python", CXX_EXTENSIONS)):
        base = os.path.join(root, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if exts is None or name.endswith(exts):
                    path = os.path.join(dirpath, name)
                    files.append((rel(root, path), path))
    return files


def resolve(root, includer_rel, included, angle):
    """Layer of an included path: (layer or None for third-party, resolved description)."""
    includer_layer = layer_of_path(includer_rel)
    includer_dir = os.path.dirname(includer_rel)
    first = included.split("/")[0]
    if angle:
        # Only <layer/...> is ours; <vector>, <onnx/onnx_pb.h> are not.
        return (first if first in LAYERS and "/" in included else None)
    if included.startswith(("./", "../")):
        target = os.path.normpath(os.path.join(includer_dir, included)).replace(os.sep, "/")
        return layer_of_path(target) or "(outside src/ and apps/)"
    local = os.path.join(root, includer_dir, included)
    if os.path.isfile(local):
        target = os.path.normpath(os.path.join(includer_dir, included)).replace(os.sep, "/")
        return layer_of_path(target) or "(outside src/ and apps/)"
    if "/" in included:
        if first in LAYERS or os.path.isdir(os.path.join(root, "src", first)):
            return first  # from src/ (generated headers such as protocol/heinfer.pb.h too)
        return None  # third-party, e.g. "onnx/onnx_pb.h"
    return includer_layer  # a bare name: the includer's own folder (or a system header)


def check_includes(root, layers):
    """Violations as printable lines, and the number of includes of ours checked."""
    closure = allowed_closure(layers)
    violations, checked = [], 0
    for relpath, path in source_files(root):
        layer = layer_of_path(relpath)
        if layer is None:
            violations.append(f"{relpath}:1: file is in no layer folder (move it under src/<layer>/)")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                included = m.group(1) if m.group(1) is not None else m.group(2)
                target = resolve(root, relpath, included, m.group(1) is None)
                if target is None:
                    continue
                checked += 1
                if layer not in layers:
                    continue  # reported once as an unknown folder
                if target == layer or target in closure[layer]:
                    continue
                violations.append(f"{relpath}:{lineno}: layer '{layer}' must not include '{target}' ({included})")
    return violations, checked


def check_folders(root, layers):
    errors = []
    src = os.path.join(root, "src")
    if not os.path.isdir(src):
        return [f"{rel(root, src)}: no such directory (wrong --root?)"]
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if os.path.isdir(path) and name not in layers:
            errors.append(f"src/{name}/: unknown layer '{name}': place it in LAYERS "
                          f"(tests/layering/check_layering.py) before adding files")
        elif os.path.isdir(path) and name == "apps":
            errors.append("src/apps/: 'apps' is the top-level apps/ folder, not a folder of src/")
    return errors


def check_line_counts(root, max_lines):
    offenders = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "src")):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(LINE_LIMIT_EXTENSIONS):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                count = sum(1 for _ in f)
            if count > max_lines:
                offenders.append((rel(root, path), count))
    return offenders


def run_checks(root, max_lines, layers=LAYERS, out=sys.stdout):
    """Runs every rule on the tree at root; prints the report; returns the exit status."""
    failed = False
    errors = table_errors(layers)
    if errors:
        print(f"layering: the table is not a DAG ({len(errors)} problem(s)):", file=out)
        for e in errors:
            print(e, file=out)
        return 1
    folder_errors = check_folders(root, layers)
    violations, checked = check_includes(root, layers)
    problems = folder_errors + violations
    if problems:
        failed = True
        print(f"layering: include graph: {len(problems)} problem(s) "
              f"(includes must point downward only; --rules prints the table):", file=out)
        for p in problems:
            print(p, file=out)
    else:
        print(f"layering: include graph: OK ({checked} includes of ours, all downward)", file=out)
    if max_lines is not None:
        offenders = check_line_counts(root, max_lines)
        if offenders:
            failed = True
            print(f"layering: file length: {len(offenders)} file(s) in src/ over {max_lines} lines "
                  f"(split them by responsibility):", file=out)
            for path, count in offenders:
                print(f"{path}: {count} lines", file=out)
        else:
            print(f"layering: file length: OK (every file in src/ has at most {max_lines} lines)", file=out)
    return 1 if failed else 0


# --- self-test ------------------------------------------------------------------------
def _write(root, relpath, lines):
    path = os.path.join(root, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


# (file, lines); a line ending in "// BAD" must be reported, every other include not.
_SELF_TEST_TREE = {
    "src/ring/modulus.h": ["#pragma once", "#include <cstdint>", "#include <model/graph.h>  // BAD"],
    "src/ring/x.h": ['#include "ring/modulus.h"', '#include "ckks/context.h"  // BAD'],
    "src/ckks/context.h": ['#include "ring/modulus.h"', '#include "ring/x.h"', "#include <vector>"],
    "src/ckks/context.cpp": ['#include "context.h"', '#include "../ring/modulus.h"'],
    "src/model/graph.h": ['#include "onnx/onnx_pb.h"', '#include "model/shape.h"'],
    "src/model/shape.h": ['#include "ckks/context.h"  // BAD'],
    "src/memory/y.cpp": ['#include "memory/y.h"', '#include "ckks/context.h"', '#include "ring/x.h"',
                         '#include "runtime/z.h"  // BAD', '#include "model/graph.h"  // BAD'],
    "src/memory/y.h": ['#include "../model/shape.h"  // BAD', "#include <ckks/context.h>"],
    "src/plan/plan.h": ['#include "model/graph.h"', '#include "ckks/context.h"', '#include "memory/y.h"',
                        '#include "ring/x.h"', '#include "runtime/z.h"  // BAD'],
    "src/runtime/z.h": ['#include "plan/plan.h"', '#include "kernels/conv.h"', '#include "model/graph.h"'],
    "src/runtime/kernels/conv.h": ['#include "runtime/z.h"', '#include "ring/x.h"',
                                   '#include "protocol/wire.h"  // BAD'],
    "src/protocol/wire.h": ['#include "protocol/heinfer.grpc.pb.h"', '#include "runtime/z.h"',
                            '#include "commands.h"'],
    "apps/commands.h": ['#include "protocol/wire.h"'],
    "apps/main.cpp": ['#include "commands.h"', '#include "model/graph.h"', '#include "ring/x.h"'],
    "src/ckks/long.cpp": ["// filler"] * 601,
    "src/ckks/exact.cpp": ["// filler"] * 600,
}


def _expected(tree):
    expected = set()
    for relpath, lines in tree.items():
        for lineno, line in enumerate(lines, 1):
            if line.endswith("// BAD"):
                m = INCLUDE_RE.match(line)
                included = m.group(1) or m.group(2)
                expected.add((relpath, lineno, included))
    return expected


def _run(root, *extra):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--root", root, *extra],
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


_VIOLATION_RE = re.compile(r"^(\S+):(\d+): layer '(\w+)' must not include '([^']+)' \((.+)\)$")


def self_test():
    checks = 0

    def ok(cond, what, output=""):
        nonlocal checks
        checks += 1
        if not cond:
            print(f"self-test FAILED: {what}")
            if output:
                print(output)
            sys.exit(1)
        print(f"self-test: ok: {what}")

    ok(not table_errors(LAYERS), "the real table is acyclic and names only known layers")
    cyclic = dict(LAYERS, ring=["runtime"])
    ok(any("cycle" in e for e in table_errors(cyclic)), "a table with ring -> runtime is rejected as cyclic")
    ok(table_errors(dict(LAYERS, ckks=["ring", "nowhere"])), "a table naming an unknown layer is rejected")

    with tempfile.TemporaryDirectory(prefix="heinfer-layering-") as root:
        for relpath, lines in _SELF_TEST_TREE.items():
            _write(root, relpath, lines)
        expected = _expected(_SELF_TEST_TREE)

        status, output = _run(root, "--max-lines", "600")
        reported = set()
        for line in output.splitlines():
            m = _VIOLATION_RE.match(line)
            if m:
                reported.add((m.group(1), int(m.group(2)), m.group(5)))
        ok(status == 1, "the tree with bad includes fails (exit 1)", output)
        ok(reported == expected,
           f"exactly the {len(expected)} bad includes are reported "
           f"(missing: {sorted(expected - reported)}, extra: {sorted(reported - expected)})", output)
        ok("src/ring/x.h:2: layer 'ring' must not include 'ckks' (ckks/context.h)" in output,
           "the message names file, line, both layers and the path", output)
        ok("src/ckks/long.cpp: 601 lines" in output and "exact.cpp" not in output,
           "--max-lines 600 reports the 601-line file, not the 600-line one", output)

        status, output = _run(root)
        ok(status == 1 and "long.cpp" not in output, "without --max-lines the length rule is off", output)

        for relpath, lines in _SELF_TEST_TREE.items():
            _write(root, relpath, [x for x in lines if not x.endswith("// BAD")])
        _write(root, "src/ckks/long.cpp", ["// filler"] * 600)
        status, output = _run(root, "--max-lines", "600")
        ok(status == 0, "the same tree passes once the bad includes and lines are removed", output)

        _write(root, "src/gizmo/a.h", ['#include "ring/x.h"'])
        status, output = _run(root, "--max-lines", "600")
        ok(status == 1 and "unknown layer 'gizmo'" in output, "an unknown folder under src/ fails", output)
        os.remove(os.path.join(root, "src/gizmo/a.h"))
        os.rmdir(os.path.join(root, "src/gizmo"))

        _write(root, "src/stray.cpp", ['#include "ring/x.h"'])
        status, output = _run(root)
        ok(status == 1 and "src/stray.cpp:1: file is in no layer folder" in output,
           "a file directly in src/ fails", output)
        os.remove(os.path.join(root, "src/stray.cpp"))

        status, output = _run(root, "--max-lines", "600")
        ok(status == 0, "clean again", output)
    print(f"self-test: PASSED ({checks} checks)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                        help="the project root (holds src/ and apps/); default: this script's ../..")
    parser.add_argument("--max-lines", type=int, metavar="N",
                        help="also fail for files in src/ with more than N lines")
    parser.add_argument("--rules", action="store_true", help="print the layer table and exit")
    parser.add_argument("--self-test", action="store_true",
                        help="run the checker on a temporary tree with known bad includes")
    args = parser.parse_args(argv)
    if args.max_lines is not None and args.max_lines < 1:
        parser.error("--max-lines must be positive")
    if args.rules:
        errors = table_errors(LAYERS)
        if errors:
            print("\n".join(errors))
            return 1
        print_rules(LAYERS)
        return 0
    if args.self_test:
        return self_test()
    return run_checks(os.path.abspath(args.root), args.max_lines)


if __name__ == "__main__":
    sys.exit(main())
