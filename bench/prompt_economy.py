"""Benchmark: prompt tokens per product, and how much of each prompt is a prefix shared fleet-wide.

Provider prompt caching (OpenAI, Azure, vLLM's prefix cache) bills or computes an identical
prefix once. The context builder puts the instructions and the organisation's policies first,
byte-identical for every product under one policy set, so the share of a prompt that is an
identical prefix across two different products is the share a fleet run can cache. Measured on
the bundled examples under the default pack (v2), without health reports or findings (they
need an index and semgrep; they belong to the product part and would lower the share a little).
Tokens are estimated as characters / 4 (no tokenizer is installed). Prints JSON; exits 1 when
the mean shared share is below the 50% aim.

    python bench/prompt_economy.py
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from agent.context import TOKENIZER, ContextInputs, build_prompt, estimate_tokens  # noqa: E402
from core.spec import load_spec  # noqa: E402
from policies.packs import load_pack  # noqa: E402

EXAMPLES = ("orders", "customer_revenue", "store_footfall")
TARGET_SHARE = 0.5


def _serialised(messages: tuple[dict[str, str], ...]) -> str:
    # what the provider's cache keys on: roles and contents in order
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def _common_prefix(a: str, b: str) -> int:
    # character by character is exactly what is wanted here (not path components)
    return len(os.path.commonprefix([a, b]))  # noqa: RUF071


def main() -> int:
    pack = load_pack(REPO_ROOT / "policies" / "pack" / "v2")
    prompts = {}
    products = {}
    for name in EXAMPLES:
        repo = REPO_ROOT / "examples" / name
        prompt = build_prompt(
            ContextInputs(
                spec=load_spec(repo / "dataproduct.yaml"),
                repo=repo,
                rules=pack.rules,
                policy_version=2,
                semgrep_files=pack.semgrep_files,
            )
        )
        prompts[name] = _serialised(prompt.messages)
        products[name] = {
            "prompt_tokens": estimate_tokens(prompts[name]),
            "sections": dict(prompt.sections),
            "files": len(prompt.files),
            "files_truncated": sum(1 for f in prompt.files if f.truncated_from is not None),
        }
    pairs = []
    for a, b in itertools.combinations(EXAMPLES, 2):
        shared = _common_prefix(prompts[a], prompts[b])
        pairs.append(
            {
                "products": [a, b],
                "shared_prefix_tokens": estimate_tokens(prompts[a][:shared]),
                f"share_of_{a}": round(shared / len(prompts[a]), 3),
                f"share_of_{b}": round(shared / len(prompts[b]), 3),
                "share_of_mean_prompt": round(
                    shared / statistics.mean([len(prompts[a]), len(prompts[b])]), 3
                ),
            }
        )
    mean_share = round(statistics.mean(p["share_of_mean_prompt"] for p in pairs), 3)
    print(
        json.dumps(
            {
                "benchmark": "prompt_economy",
                "tokenizer": TOKENIZER,
                "policy_set": "policies/pack/v2",
                "rules": len(pack.rules),
                "products": products,
                "pairs": pairs,
                "mean_shared_prefix_share": mean_share,
                "target_share": TARGET_SHARE,
                "met": mean_share >= TARGET_SHARE,
            },
            indent=2,
        )
    )
    return 0 if mean_share >= TARGET_SHARE else 1


if __name__ == "__main__":
    raise SystemExit(main())
