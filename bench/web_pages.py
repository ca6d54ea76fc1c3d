"""Benchmark: each console page with 1,000 products registered (target: under 200 ms).

The fleet is written straight into a fresh SQLite database: 1,000 products, three evaluations
each with eight timed stages, an open merge request for every fifth product, policy sets v1
and v2 and eight weeks of compliance history for every product and rule (88,000 rows). One
product (the orders example) is registered for real and has a real local-forge merge request,
so its pages read a git mirror and a bare repository. Every page is fetched through an
in-process client as a signed-in viewer: one warm-up, then the median of ``--runs``.
Prints one JSON document; exits 1 when a target is missed.

    python bench/web_pages.py [--products 1000] [--runs 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
TARGET_MS = 200.0
PASSWORD = "bench-password"  # noqa: S105 - a throwaway account in a temporary database


def build(home: Path, products: int) -> dict[str, object]:
    """The fleet in the database; returns the ids the timed pages need."""
    import git
    from sqlalchemy import insert, select

    from specfleet.core.db import (
        ComplianceRecord,
        Evaluation,
        LLMCall,
        MergeRequest,
        Product,
        StageResult,
        ensure_schema,
        make_engine,
        session_scope,
    )
    from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
    from specfleet.core.forges.local import LocalForge
    from specfleet.core.git import MirrorCache
    from specfleet.core.registry import Registration, Registry
    from specfleet.core.windows import iso_week
    from specfleet.policies.packs import load_pack
    from specfleet.policies.store import publish
    from specfleet.web.auth import create_account

    engine = make_engine(f"sqlite:///{home / 'specfleet.db'}")
    ensure_schema(engine)
    create_account(engine, "viewer", "viewer", [], PASSWORD, "bench")
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    stages = ("fetch", "load", "assess", "plan", "apply", "verify", "publish", "record")
    product_rows = [
        {
            "id": f"product-{index:05d}",
            "name": f"Product {index}",
            "repo_url": f"https://git.example.com/data/product-{index:05d}.git",
            "branch": "main",
            "spec_path": "dataproduct.yaml",
            "forge": "local",
            "owners": [f"team-{index % 40}@example.com"],
            "tags": [f"domain-{index % 12}", "tier-1" if index % 3 == 0 else "tier-2"],
            "active": True,
            "registered_at": now,
            "updated_at": now,
        }
        for index in range(products - 1)
    ]
    with session_scope(engine) as session:
        session.execute(insert(Product), product_rows)

    # one real product: the orders example, registered through the registry (git mirror)
    source = home / "sources" / "orders"
    shutil.copytree(REPO_ROOT / "examples" / "orders", source)
    repo = git.Repo.init(source, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "bench")
        config.set_value("user", "email", "bench@example.com")
    repo.git.add(A=True)
    repo.index.commit("orders")
    Registry(engine, MirrorCache(home / "mirrors"), "bench").add(Registration(repo=str(source)))
    forge = LocalForge(engine, home / "forge")
    forge.ensure_project("orders", source)
    repo.git.checkout("-B", "work", "main")
    requirements = source / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("pandas==1.5.3", "pandas==2.2.3"))
    repo.git.add(A=True)
    head = repo.index.commit("Upgrade pandas").hexsha
    repo.git.checkout("main")
    repo.close()
    forge.ensure_branch(BranchPush("orders", EVERGREEN_BRANCH, head, source))
    description = "## Verification\n\n| check | baseline | candidate |\n|---|---|---|\n" + "".join(
        f"| check {n} | pass | pass |\n" for n in range(20)
    )
    forge.ensure_merge_request(
        MergeRequestParams(
            project="orders",
            product_id="orders",
            title="Upgrade pandas to 2.2.3",
            description=description,
            proposal_key="bench",
        )
    )

    all_ids = [row["id"] for row in product_rows] + ["orders"]
    evaluations = []
    for product_id in all_ids:
        for week in range(3):
            day = today - dt.timedelta(weeks=week)
            evaluations.append(
                {
                    "product_id": product_id,
                    "window": iso_week(day),
                    "trigger": "weekly",
                    "status": "done",
                    "outcome": ("published", "no-op", "needs-human")[hash(product_id) % 3],
                    "queued_at": now - dt.timedelta(weeks=week),
                    "started_at": now - dt.timedelta(weeks=week),
                    "finished_at": now - dt.timedelta(weeks=week) + dt.timedelta(seconds=95),
                    "attempts": 1,
                }
            )
    with session_scope(engine) as session:
        session.execute(insert(Evaluation), evaluations)
        ids = session.execute(select(Evaluation.id)).scalars().all()
        session.execute(
            insert(StageResult),
            [
                {
                    "evaluation_id": evaluation_id,
                    "stage": stage,
                    "outcome": "ok",
                    "started_at": now,
                    "duration_ms": 1000 + position * 250,
                }
                for evaluation_id in ids
                for position, stage in enumerate(stages)
            ],
        )
        session.execute(
            insert(MergeRequest),
            [
                {
                    "product_id": product_id,
                    "forge": "gitlab",
                    "forge_ref": str(index),
                    "url": f"https://gitlab.example.com/data/{product_id}/-/merge_requests/1",
                    "branch": "specfleet/evergreen",
                    "target_branch": "main",
                    "title": "Evergreen: dependency upgrades",
                    "description": "",
                    "state": "open",
                    "draft": False,
                    "labels": [],
                    "approvals": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for index, product_id in enumerate(all_ids[:-1])
                if index % 5 == 0
            ],
        )
        orders_evaluation = max(ids)
        session.execute(
            insert(LLMCall),
            [
                {
                    "product_id": "orders",
                    "window": iso_week(today),
                    "evaluation_id": orders_evaluation,
                    "model": "gpt-4o-mini",
                    "purpose": "plan",
                    "prompt_tokens": 12000,
                    "cached_prompt_tokens": 8000,
                    "completion_tokens": 900,
                    "cost_usd": 0.003,
                    "duration_ms": 4000,
                    "outcome": "ok",
                    "at": now,
                }
            ],
        )
    publish(engine, load_pack(REPO_ROOT / "policies/pack/v1"), "v1", "bench")
    outcome = publish(engine, load_pack(REPO_ROOT / "policies/pack/v2"), "v2", "bench")
    rule_ids = [rule.id for rule in outcome.policy_set.rules]
    history = []
    for week in range(8):
        moment = now - dt.timedelta(weeks=7 - week)
        for position, product_id in enumerate(all_ids):
            for rule_id in rule_ids:
                adopted = position < len(all_ids) * (week + 1) / 8
                history.append(
                    {
                        "product_id": product_id,
                        "policy_set_version": 2,
                        "rule_id": rule_id,
                        "status": "pass" if adopted else "fail",
                        "findings": 0 if adopted else 1,
                        "window": iso_week(moment.date()),
                        "checked_at": moment,
                    }
                )
    with session_scope(engine) as session:
        for start in range(0, len(history), 5000):
            session.execute(insert(ComplianceRecord), history[start : start + 5000])
    with session_scope(engine) as session:
        merge_request_id = session.execute(
            select(MergeRequest.id).where(MergeRequest.product_id == "orders")
        ).scalar_one()
    engine.dispose()
    return {
        "evaluation": orders_evaluation,
        "merge_request": merge_request_id,
        "rule": "ORG-PY-004",
        "compliance_rows": len(history),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-web-") as folder:
        home = Path(folder)
        os.environ["SPECFLEET_HOME"] = str(home)
        started = time.perf_counter()
        facts = build(home, args.products)
        setup_seconds = time.perf_counter() - started

        from fastapi.testclient import TestClient

        from specfleet.core.settings import Settings
        from specfleet.web.app import create_app

        client = TestClient(
            create_app(Settings(home=home, database_url=f"sqlite:///{home / 'specfleet.db'}"))
        )
        form = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf is not None
        client.post(
            "/login", data={"name": "viewer", "password": PASSWORD, "csrf_token": csrf.group(1)}
        )
        pages = {
            "fleet": "/",
            "fleet filtered by owner": "/?owner=team-7%40example.com",
            "product": "/products/orders",
            "evaluation": f"/evaluations/{facts['evaluation']}",
            "merge request": f"/merge-requests/{facts['merge_request']}",
            "policies": "/policies",
            "compliance matrix": "/policies/compliance",
            "rollout": f"/policies/rules/{facts['rule']}",
            "api: products": "/api/v1/products",
        }
        from specfleet.web.auth import issue_token

        token = issue_token(client.app.state.web.engine, "viewer", "bench")  # type: ignore[attr-defined]
        targets = []
        for figure, path in pages.items():
            headers = {"Authorization": f"Bearer {token}"} if path.startswith("/api") else {}
            began = time.perf_counter()
            response = client.get(path, headers=headers)
            first = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                print(f"{path}: {response.status_code} {response.text[:300]}", file=sys.stderr)
                return 2
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                client.get(path, headers=headers)
                times.append((time.perf_counter() - began) * 1000)
            median = statistics.median(times)
            targets.append(
                {
                    "figure": f"{figure} page, median of {args.runs} ({args.products} products)",
                    "value": f"{median:.0f} ms",
                    "target": f"< {TARGET_MS:.0f} ms",
                    "met": median < TARGET_MS,
                    "median_ms": round(median, 1),
                    "max_ms": round(max(times), 1),
                    # the first view after start-up: cold caches (compliance history, specs)
                    "first_ms": round(first, 1),
                }
            )
    result = {
        "benchmark": "web_pages",
        "products": args.products,
        "compliance_rows": facts["compliance_rows"],
        "setup_seconds": round(setup_seconds, 1),
        "runs": args.runs,
        "targets": targets,
    }
    print(json.dumps(result, indent=2))
    return 0 if all(item["met"] for item in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
