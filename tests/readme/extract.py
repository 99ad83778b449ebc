#!/usr/bin/env python3
"""Turns README.md's ```sh blocks into one bash script for scripts/readme-examples.

usage: extract.py README PHASE   (PHASE: server | lambda)

A block belongs to the `lambda` phase when it runs `cargo lambda` or stands under a heading
"Under the Lambda runtime"; every other ```sh block belongs to `server`. Other fences
(```text, ``` and so on) are never run.

Each block is cut into commands the way bash reads them (a command ends where `bash -n`
accepts the text so far: continuation lines and multi-line quotes stay together). Each
command becomes

    __cmd LINE 'what the README says'      # resets the record of HTTP statuses
    { COMMAND
    } >"$__OUT"                            # the same shell: variables it sets stay set
    __check LINE STATUS JQ-CHECKS...       # every curl status, then the README's claims

A comment `# -> NNN ...` on the command's last line or on the first line after it asserts
the status of the command's last curl call; a JSON object after it (`# -> 201 {"id": ...}`,
continued on indented comment lines) asserts the top-level members it names: literal
values are compared (`"accepted":2`, `[]`), placeholders (`"0193…"`, `"<id>"`, `"..."`, `…`),
ISO 8601 times and nested values only have to be present, and `no NAME` says the member
must be absent. A URL after the status (`# -> 302 https://...`) must be the output.

Commands matching a rule of $README_SKIP_RULES (lines `REGEX => REASON`, matched against the
command's text) are not run: the script prints them with the reason.
"""

import json
import os
import re
import shlex
import subprocess
import sys

FENCE = re.compile(r"^```(\S*)\s*$")
EXPECT = re.compile(r"#\s*->\s*(\d{3})?\s*(.*)$")
PLACEHOLDER = re.compile(r"…|\.\.\.|<[^>]*>")
TIMESTAMP = re.compile(r'^"\d{4}-\d\d-\d\dT')  # example times: only present


def complete(text):
    """Whether bash reads `text` as whole commands (no open quote, no trailing \\ or |)."""
    if text.rstrip().endswith("\\"):
        return False
    r = subprocess.run(["bash", "-n"], input=text + "\n", capture_output=True, text=True)
    return r.returncode == 0 and "here-document" not in r.stderr


def blocks(readme):
    """(phase, first line number, [lines]) of every ```sh block, in order."""
    heading, out, body, start, lang = "", [], None, 0, None
    for no, line in enumerate(open(readme, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        m = FENCE.match(line)
        if body is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            if m:
                body, start, lang = [], no + 1, m.group(1)
            continue
        if line.startswith("```"):
            if lang == "sh":
                text = "\n".join(body)
                lam = "cargo lambda" in text or heading.lower().startswith("under the lambda runtime")
                out.append(("lambda" if lam else "server", start, body, heading))
            body = None
            continue
        body.append(line)
    return out


def members(obj_text):
    """Top-level members named in a README JSON comment: [(name, literal JSON or None)],
    and the names marked `no NAME`."""
    named, absent, i, depth, n = [], [], 0, 0, len(obj_text)
    plain = []  # depth-1 text outside strings, for `no NAME`
    while i < n:
        c = obj_text[i]
        if c == '"':
            j = i + 1
            while j < n and obj_text[j] != '"':
                j += 2 if obj_text[j] == "\\" else 1
            s = obj_text[i : j + 1]
            i = j + 1
            if depth != 1:
                continue
            k = i
            while k < n and obj_text[k] == " ":
                k += 1
            if k >= n or obj_text[k] != ":":
                continue
            name = json.loads(s)
            k += 1
            while k < n and obj_text[k] == " ":
                k += 1
            if k < n and obj_text[k] == '"':
                e = k + 1
                while e < n and obj_text[e] != '"':
                    e += 2 if obj_text[e] == "\\" else 1
                lit = obj_text[k : e + 1]
                rest = obj_text[e + 1 :].lstrip()
                if PLACEHOLDER.search(lit) or TIMESTAMP.match(lit) or rest.startswith("|"):
                    named.append((name, None))
                else:
                    named.append((name, lit))
                i = e + 1
            elif obj_text.startswith(("[]", "{}"), k):
                named.append((name, obj_text[k : k + 2]))
                i = k + 2
            else:
                m = re.match(r"(-?\d+(?:\.\d+)?|true|false|null)\s*(?=[,}])", obj_text[k:])
                named.append((name, m.group(1) if m else None))
                i = k
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif depth == 1:
            plain.append(c)
        i += 1
    absent = re.findall(r"\bno ([a-z_]+)\b", "".join(plain))
    return named, absent


def checks(rest):
    """jq expressions (each must be true) for the text after `# -> NNN`."""
    rest = rest.strip()
    if re.match(r"https?://", rest):
        return ["text:" + rest.split()[0]]
    if not rest.startswith("{"):
        return []
    named, absent = members(rest)
    out = []
    for name, lit in named:
        key = json.dumps(name)
        if lit is None:
            out.append(f"has({key})")
        else:
            out.append(f"has({key}) and .[{key}] == {lit}")
    out += [f"has({json.dumps(name)}) | not" for name in absent]
    return out


def rules():
    out = []
    for line in os.environ.get("README_SKIP_RULES", "").splitlines():
        if line.strip():
            regex, reason = line.split(" => ", 1)
            out.append((re.compile(regex), reason.strip()))
    return out


def main():
    readme, phase = sys.argv[1], sys.argv[2]
    skip = rules()
    out = []
    for blk_phase, start, lines, heading in blocks(readme):
        if blk_phase != phase:
            continue
        out.append(f"__block {start} {shlex.quote(heading)}")
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.strip() or line.lstrip().startswith("#"):
                i += 1
                continue
            first, text = i, line
            while not complete(text):
                i += 1
                if i >= len(lines):
                    sys.exit(f"README.md:{start + first}: this command never ends (open quote?)")
                text += "\n" + lines[i]
            i += 1
            # The expectation: on the last line, or the comment line right after.
            last = text.split("\n")[-1]
            m = EXPECT.search(last) if "#" in last else None
            if m is None and i < len(lines) and EXPECT.match(lines[i].strip()):
                m = EXPECT.match(lines[i].strip())
                rest = m.group(2)
                j = i + 1
                while j < len(lines) and re.match(r"^#\s{2,}\S", lines[j].strip()):
                    rest += " " + lines[j].strip()[1:].strip()
                    j += 1
            elif m is not None:
                rest = m.group(2)
            lineno = start + first
            shown = text.split("\n")[0][:110]
            reason = next((r for rx, r in skip if rx.search(text)), None)
            if reason:
                out.append(f"__skip {lineno} {shlex.quote(shown)} {shlex.quote(reason)}")
                continue
            status = (m.group(1) if m else None) or "-"
            exprs = checks(rest) if m else []
            out.append(f"__cmd {lineno} {shlex.quote(shown)}")
            out.append("{\n" + text + "\n} >\"$__OUT\"")
            out.append(" ".join(["__check", str(lineno), status] + [shlex.quote(e) for e in exprs]))
    print("\n".join(out))


if __name__ == "__main__":
    main()
