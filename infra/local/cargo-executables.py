#!/usr/bin/env python3
"""Prints `name path` for each executable a cargo build made, read from
cargo's JSON messages on stdin (`--message-format=json-render-diagnostics`).

--tests: only test executables (`cargo test --no-run`), named `kind-name`,
since a binary and a test may share a name (`soak`).
"""
import json
import sys

tests_only = "--tests" in sys.argv[1:]
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") != "compiler-artifact" or not message.get("executable"):
        continue
    target = message["target"]
    if tests_only:
        if message["profile"]["test"]:
            print(target["kind"][0] + "-" + target["name"], message["executable"])
    else:
        print(target["name"], message["executable"])
