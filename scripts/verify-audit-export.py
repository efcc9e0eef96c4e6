#!/usr/bin/env python3
"""Verifies a Latchkey audit export without access to Latchkey or its database.

    python3 scripts/verify-audit-export.py latchkey-audit-<tenant>.jsonl [--head SEQ:HASH]

Reads a JSON Lines or CSV export (by its extension) and recomputes every sealed event's link:
SHA-256 of the previous link's hex followed by the event's RFC 8785 canonical JSON (the JSON
Lines object without its "chain" member). Consecutive positions must follow each other. With
--head (a chain head kept outside Latchkey, e.g. from an audit.checkpoint webhook), the export
must hold that position with that hash. See docs/audit.md. Standard library only.

Exit status: 0 when everything in the file verifies, 1 when anything does not (each named).
"""

import argparse
import csv
import hashlib
import json
import math
import sys

GENESIS = "0" * 64
# A CSV cell a spreadsheet would run as a formula got a leading "'" (see docs/audit.md).
DEFUSED = ("'=", "'+", "'-", "'@", "'\t", "'\r")


def jcs_number(n):
    # RFC 8785 numbers are ECMAScript's: integers as such, others in shortest round-trip form.
    if isinstance(n, bool) or isinstance(n, int):
        return json.dumps(n)
    if not math.isfinite(n):
        raise ValueError("not a JSON number")
    if n.is_integer() and abs(n) < 1e21:
        return str(int(n))
    text = repr(n)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0')}"
    return text


def canonical(value):
    """RFC 8785 (JCS) text of a parsed JSON value."""
    if value is None or isinstance(value, bool) or isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return jcs_number(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k]) for k in keys) + "}"
    raise ValueError(f"not a JSON value: {value!r}")


def link(prev, document):
    return hashlib.sha256(prev.encode("ascii") + canonical(document).encode("utf-8")).hexdigest()


def from_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            chain = event.pop("chain", None)
            yield number, event, chain


def cell(value):
    if value.startswith(DEFUSED):
        value = value[1:]
    return value if value != "" else None


def from_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.DictReader(f), 2):
            c = {k: cell(v) for k, v in row.items()}
            event = {
                "id": int(c["id"]),
                "occurred_at": c["occurred_at"],
                "tenant_id": c["tenant_id"],
                "actor": {"kind": c["actor_kind"], "id": c["actor_id"], "label": c["actor_label"]},
                "action": c["action"],
                "target": {"kind": c["target_kind"], "id": c["target_id"]} if c["target_kind"] else None,
                "outcome": c["outcome"],
                "error_code": c["error_code"],
                "ip": c["ip"],
                "user_agent": c["user_agent"],
                "details": json.loads(c["details"]) if c["details"] is not None else None,
            }
            chain = None
            if c["chain_hash"]:
                chain = {"name": c["chain"], "seq": int(c["chain_seq"]), "prev": c["chain_prev"], "hash": c["chain_hash"]}
            yield number, event, chain


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="a .jsonl or .csv audit export")
    parser.add_argument("--head", help="SEQ:HASH of the export's chain, kept outside Latchkey")
    args = parser.parse_args()
    read = from_csv if args.export.endswith(".csv") else from_jsonl

    problems, unsealed, chains = [], 0, {}
    for number, event, chain in read(args.export):
        if chain is None:
            unsealed += 1
            continue
        if link(chain["prev"], event) != chain["hash"]:
            problems.append(f"line {number}: event {event['id']} does not match its link (altered)")
        chains.setdefault(chain["name"], []).append((chain["seq"], chain["prev"], chain["hash"], event["id"]))

    report = {"chains": {}, "unsealed": unsealed}
    for name, links in sorted(chains.items()):
        links.sort()
        gaps = 0
        for before, after in zip(links, links[1:]):
            if after[0] == before[0]:
                problems.append(f"chain {name}: position {after[0]} appears twice")
            elif after[0] == before[0] + 1 and after[1] != before[2]:
                problems.append(f"chain {name}: event {after[3]} at position {after[0]} does not follow position {before[0]}")
            elif after[0] > before[0] + 1:
                gaps += 1
        if links[0][0] == 1 and links[0][1] != GENESIS:
            problems.append(f"chain {name}: position 1 does not start the chain")
        report["chains"][name] = {
            "events": len(links),
            "first": links[0][0],
            "last": links[-1][0],
            "head": {"seq": links[-1][0], "hash": links[-1][2]},
            # A filtered export (by actor, action, user or dates) leaves positions out; each
            # line still verifies on its own.
            "gaps": gaps,
        }
    if args.head:
        seq, _, want = args.head.partition(":")
        found = [l for links in chains.values() for l in links if str(l[0]) == seq.strip()]
        if not found or found[0][2] != want.strip().lower():
            problems.append(f"the head {args.head} is not in this export (or does not match)")
    report["problems"] = problems
    report["verified"] = not problems
    print(json.dumps(report, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
