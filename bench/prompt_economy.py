"""Benchmark: prompt tokens per product, and how much of each prompt is a prefix shared fleet-wide.

Provider prompt caching (OpenAI, Azure, vLLM's prefix cache) bills or computes an identical
prefix once. The context builder puts the instructions, the policy rules (as short stable
summaries) and the spec format reference first, byte-identical for every product under one
policy set, and the product-specific material last, so the share of a prompt that is an
identical prefix across two different products is the share a fleet run can cache.

Measured on the prompts really sent: for each bundled example the product part is built as the
pipeline builds it (the health report from its pins and the offline advisory fixtures, the
findings of a real policy check with semgrep under the default pack v2), the planner sends it
with the real openai client to the scripted OpenAI-compatible server (tests/support), and the
messages the server received are compared. Tokens are estimated as characters / 4 (no
tokenizer is installed). Prints JSON; exits 1 when the mean shared share is below 60 %.

    python bench/prompt_economy.py
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from specfleet.agent.context import TOKENIZER, ContextInputs, build_prompt, estimate_tokens  # noqa: E402
from specfleet.agent.llm import LLMClient, LLMConfig, LLMPlanner  # noqa: E402
from specfleet.core.health.advisories.osv_directory import OsvDirectory  # noqa: E402
from specfleet.core.health.pins import read_pins  # noqa: E402
from specfleet.core.health.report import HealthReport, assess  # noqa: E402
from specfleet.core.spec import load_spec  # noqa: E402
from specfleet.policies.check import check_product, run_semgrep_rules  # noqa: E402
from specfleet.policies.packs import load_pack  # noqa: E402
from tests.support.scripted_llm import Step, scripted_llm  # noqa: E402

EXAMPLES = ("orders", "customer_revenue", "store_footfall")
TARGET_SHARE = 0.6
ADVISORIES = REPO_ROOT / "tests" / "fixtures" / "advisories"
TODAY = dt.date(2026, 12, 1)
NO_CHANGE = {
    "summary": "",
    "no_change": True,
    "no_change_reason": "measuring the prompt",
    "rationale": [],
    "edits": [],
    "amendment": None,
}


def _health(repo: Path, spec: object) -> HealthReport:
    pinset = read_pins(repo, spec.implementation.dependencies)  # type: ignore[attr-defined]
    source = OsvDirectory(ADVISORIES)
    exact = [(pin.name, pin.version) for pin in pinset.pins if pin.version]
    return assess(
        spec.id,  # type: ignore[attr-defined]
        spec.implementation.runtime,  # type: ignore[attr-defined]
        pinset.pins,
        pinset.problems,
        {},
        source.advisories_for(exact),
        source.name,
        TODAY,
        pinset.files,
    )


def _sent_prompts(pack: object) -> tuple[dict[str, list[dict[str, str]]], dict[str, object]]:
    """The messages the scripted server received for each example, and prompt facts."""
    built = {}
    facts: dict[str, object] = {}
    for name in EXAMPLES:
        repo = REPO_ROOT / "examples" / name
        spec = load_spec(repo / "dataproduct.yaml")
        health = _health(repo, spec)
        check = check_product(
            repo, spec, "dataproduct.yaml", pack.rules, pack.semgrep_files, health,  # type: ignore[attr-defined]
            run_semgrep_rules, 2,
        )  # fmt: skip
        prompt = build_prompt(
            ContextInputs(
                spec=spec,
                repo=repo,
                rules=pack.rules,  # type: ignore[attr-defined]
                policy_version=2,
                semgrep_files=pack.semgrep_files,  # type: ignore[attr-defined]
                # as the pipeline passes them: the rules in scope and in effect
                applicable_rule_ids=frozenset(
                    rule for rule, status in check.statuses.items() if status != "not-applicable"
                ),
                health=health,
                findings=tuple(check.findings),
            )
        )
        built[name] = prompt
        facts[name] = {
            "sections": dict(prompt.sections),
            "findings": len(check.findings),
            "files": len(prompt.files),
            "files_truncated": sum(1 for f in prompt.files if f.truncated_from is not None),
        }
    sent: dict[str, list[dict[str, str]]] = {}
    with scripted_llm(*[Step(plan=NO_CHANGE) for _ in EXAMPLES]) as server:
        planner = LLMPlanner(
            LLMClient(LLMConfig(base_url=server.base_url, api_key="bench", model="bench")), ()
        )
        for name in EXAMPLES:
            planner.plan(built[name].messages, product_id=name, window="bench", purpose="plan")
        for name, received in zip(EXAMPLES, server.received, strict=True):
            sent[name] = list((received.body or {}).get("messages", []))
    return sent, facts


def _serialised(messages: tuple[dict[str, str], ...]) -> str:
    # what the provider's cache keys on: roles and contents in order
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def _common_prefix(a: str, b: str) -> int:
    # character by character is exactly what is wanted here (not path components)
    return len(os.path.commonprefix([a, b]))  # noqa: RUF071


def main() -> int:
    pack = load_pack(REPO_ROOT / "policies" / "pack" / "v2")
    sent, facts = _sent_prompts(pack)
    prompts = {name: _serialised(tuple(messages)) for name, messages in sent.items()}
    products = {
        name: {"prompt_tokens": estimate_tokens(prompts[name]), **facts[name]}  # type: ignore[dict-item]
        for name in EXAMPLES
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
                "measured_on": "messages received by the scripted OpenAI-compatible server",
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
