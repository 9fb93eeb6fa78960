#!/usr/bin/env python3
"""Prints Cargo.toml's release profile on one line, per-crate opt-levels
included (bench.sh's table header): `opt-level = 3, lto = "fat", ...;
per crate: opt-level z: *; opt-level s: shared; opt-level 3: 28 crates`.
"""
import collections
import json
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    release = tomllib.load(f)["profile"]["release"]
packages = release.pop("package", {})
settings = [f"{key} = {json.dumps(value)}" for key, value in release.items()]
by_level = collections.defaultdict(list)
for crate, overrides in packages.items():
    by_level[str(overrides.get("opt-level"))].append(crate)
crates = "; ".join(
    f"opt-level {level}: " + (", ".join(names) if len(names) <= 3 else f"{len(names)} crates")
    for level, names in by_level.items()
)
print(", ".join(settings) + (f"; per crate: {crates}" if crates else ""))
