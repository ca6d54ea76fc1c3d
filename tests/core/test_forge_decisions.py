"""What a new proposal does to a product's merge requests (pure decision)."""

from __future__ import annotations

from specfleet.core.forges.decisions import MergeRequestRecord, ProposalRecord, decide_publication


def mr(ref: str, state: str, key: str | None) -> MergeRequestRecord:
    return MergeRequestRecord(ref=ref, state=state, proposal_key=key)


def test_first_proposal_creates_a_merge_request():
    """With no history, the proposal opens a merge request."""
    decision = decide_publication("k1", [], [])
    assert decision.action == "create" and decision.publishes


def test_open_merge_request_with_another_key_is_updated():
    """A newer proposal updates the open merge request instead of opening a second one."""
    decision = decide_publication("k2", [mr("1", "open", "k1")])
    assert (decision.action, decision.merge_request_ref) == ("update", "1")
    assert decision.publishes


def test_open_merge_request_with_the_same_key_is_unchanged():
    """The same proposal again touches nothing."""
    decision = decide_publication("k1", [mr("1", "open", "k1")])
    assert (decision.action, decision.merge_request_ref) == ("unchanged", "1")
    assert not decision.publishes


def test_closed_without_merging_is_suppressed():
    """A proposal an owner closed is not proposed again, while an open one is not disturbed."""
    history = [mr("1", "closed", "k1"), mr("2", "open", "k2")]
    decision = decide_publication("k1", history)
    assert (decision.action, decision.merge_request_ref) == ("suppressed", "1")
    assert "closed" in decision.reason


def test_closed_proposal_row_alone_suppresses():
    """A proposal recorded as closed suppresses even without its merge-request row."""
    decision = decide_publication("k1", [], [ProposalRecord("k1", "closed")])
    assert decision.action == "suppressed"


def test_merged_proposal_is_already_merged_even_if_also_closed_once():
    """A merged key is the baseline; an earlier close of the same content does not matter."""
    history = [mr("1", "closed", "k1"), mr("2", "merged", "k1")]
    assert decide_publication("k1", history).action == "already-merged"
    assert decide_publication("k1", [], [ProposalRecord("k1", "merged")]).action == (
        "already-merged"
    )


def test_changed_inputs_give_a_new_key_that_is_proposed_again():
    """After a close, a proposal with a different key (changed inputs) is created."""
    history = [mr("1", "closed", "k1")]
    decision = decide_publication("k1b", history, [ProposalRecord("k1", "closed")])
    assert decision.action == "create"
