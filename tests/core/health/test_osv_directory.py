"""The offline OSV directory source: layouts, lazy reading, bad files, and the real snapshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from specfleet.core.health.advisories import (
    AdvisoryError,
    AdvisorySource,
    OsvDirectory,
    PackageVersion,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "advisories"
SNAPSHOT = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "advisory-database"


def pin(name: str, version: str) -> PackageVersion:
    return canonicalize_name(name), version


def ids_for(source: AdvisorySource, name: str, version: str) -> list[str]:
    key = pin(name, version)
    return [advisory.id for advisory in source.advisories_for([key])[key]]


@pytest.fixture
def directory() -> OsvDirectory:
    return OsvDirectory(FIXTURES)


def test_orders_pins_against_real_advisories(directory: OsvDirectory) -> None:
    """Real PyPA files: the orders product's pins get the advisories that apply, with fixes."""
    pins = [pin("pyarrow", "14.0.0"), pin("requests", "2.28.2"), pin("duckdb", "0.9.2")]
    pins += [pin("pandas", "1.5.3"), pin("pyarrow", "14.0.1"), pin("duckdb", "0.10.0")]
    found = directory.advisories_for(pins)
    assert list(found) == pins
    summary = {key: [(a.id, a.fixed_versions) for a in found[key]] for key in pins}
    assert summary == {
        ("pyarrow", "14.0.0"): [("PYSEC-2023-238", ("14.0.1",))],
        ("requests", "2.28.2"): [("PYSEC-2023-74", ("2.31.0",))],
        ("duckdb", "0.9.2"): [("PYSEC-2024-25", ("0.9.3.dev6",))],
        ("pandas", "1.5.3"): [],
        ("pyarrow", "14.0.1"): [],
        ("duckdb", "0.10.0"): [],
    }
    (duckdb,) = found[pin("duckdb", "0.9.2")]
    assert (duckdb.severity, duckdb.cvss_score) == ("critical", 9.8)
    (requests,) = found[pin("requests", "2.28.2")]
    assert requests.aliases == ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q")
    assert requests.first_fix_after("2.28.2") == "2.31.0"
    assert requests.severity is None  # the record carries no severity
    assert ids_for(directory, "pandas", "1.0.3") == ["PYSEC-2020-73"]


def test_last_affected_and_versions_lists(directory: OsvDirectory) -> None:
    """last_affected includes its version; a versions-only record matches exactly its list."""
    assert ids_for(directory, "py", "1.11.0") == ["PYSEC-2022-42969"]  # real last_affected
    assert ids_for(directory, "demo-last-affected", "1.4.2") == ["DEMO-2024-2"]
    assert ids_for(directory, "demo-last-affected", "1.4.3") == []
    assert ids_for(directory, "demo-versions-only", "1.1.0") == ["DEMO-2024-1"]
    assert ids_for(directory, "demo-versions-only", "1.2.0") == ["DEMO-2024-1"]  # listed as 1.2
    assert ids_for(directory, "demo-versions-only", "1.1.1") == []
    (only,) = directory.advisories_of("demo-versions-only")
    assert only.severity == "high"  # CVSS v4 has no formula here: the database label decides


def test_two_affected_entries_for_one_package(directory: OsvDirectory) -> None:
    """Ranges of every affected entry for the package count; GIT ranges are ignored."""
    (advisory,) = directory.advisories_of("demo-two-ranges")
    assert advisory.fixed_versions == ("1.2.5", "2.0.3")
    assert len(advisory.ranges) == 2
    assert advisory.severity == "medium"  # MODERATE
    assert ids_for(directory, "demo-two-ranges", "1.1") == ["DEMO-2024-3"]
    assert ids_for(directory, "demo-two-ranges", "1.3") == []
    assert ids_for(directory, "demo-two-ranges", "2.0.1") == ["DEMO-2024-3"]
    assert advisory.first_fix_after("2.0.1") == "2.0.3"
    assert advisory.first_fix_after("1.1") == "1.2.5"


def test_withdrawn_advisories_are_not_reported(directory: OsvDirectory) -> None:
    """Withdrawn records (real and crafted) match no version, though they are still read."""
    assert ids_for(directory, "redis", "4.5.4") == []
    assert ids_for(directory, "demo-withdrawn", "1.0") == []
    assert [a.id for a in directory.advisories_of("redis")] == ["PYSEC-2023-73"]


def test_names_are_canonicalised_on_both_sides(directory: OsvDirectory) -> None:
    """Folder Demo_Case/ with package Demo.Case answers demo-case, DEMO_case, Demo.Case."""
    for spelling in ("demo-case", "DEMO_case", "Demo.Case"):
        assert ids_for(directory, spelling, "1.0") == ["DEMO-2024-6"]
    found = directory.advisories_for([("Demo.Case", "1.0")])  # type: ignore[list-item]
    assert [a.package for a in found[("Demo.Case", "1.0")]] == ["demo-case"]  # type: ignore[index]


def test_json_records_are_read(directory: OsvDirectory) -> None:
    """An OSV .json file counts like YAML, with its CVSS v3 vector scored."""
    (advisory,) = directory.advisories_for([pin("demo-json", "1.4")])[pin("demo-json", "1.4")]
    assert (advisory.id, advisory.summary) == ("DEMO-2024-7", "A JSON OSV record")
    assert (advisory.severity, advisory.cvss_score) == ("medium", 6.1)
    assert ids_for(directory, "demo-json", "1.5") == []


def test_undecidable_advisories_are_included_as_maybe(directory: OsvDirectory) -> None:
    """An unparsable fixed version: listed versions match, others are reported as 'maybe'."""
    (listed,) = directory.advisories_for([pin("demo-unparsable", "0.1")])[
        pin("demo-unparsable", "0.1")
    ]
    assert listed.affects("0.1") is True
    (maybe,) = directory.advisories_for([pin("demo-unparsable", "0.5")])[
        pin("demo-unparsable", "0.5")
    ]
    assert maybe.affects("0.5") is None


def test_malformed_files_are_reported_and_skipped(directory: OsvDirectory) -> None:
    """Bad YAML, a list, a record without id or with a bad event: reported, the rest counts."""
    assert ids_for(directory, "demo-malformed", "1.0") == ["DEMO-2024-5"]
    reasons = {Path(problem.path).name: problem.reason for problem in directory.problems}
    assert set(reasons) == {"A-LIST.yaml", "BAD-EVENT.yaml", "BROKEN-YAML.yaml", "NO-ID.yaml"}
    assert reasons["A-LIST.yaml"] == "expected an OSV record (a mapping), found a list"
    assert reasons["BROKEN-YAML.yaml"].startswith("invalid YAML")
    assert "line 3" in reasons["BROKEN-YAML.yaml"]
    assert reasons["NO-ID.yaml"] == "the record has no 'id'"
    assert "record BAD-EVENT: affected[0]: ranges[0].events[0]" in reasons["BAD-EVENT.yaml"]
    assert all(problem.path.startswith(str(FIXTURES)) for problem in directory.problems)
    # asking again reports nothing new
    ids_for(directory, "demo-malformed", "2.0")
    assert len(directory.problems) == 4


def test_only_the_asked_packages_are_read(directory: OsvDirectory) -> None:
    """Reading is lazy: a package's folder is parsed only when that package is asked about."""
    assert ids_for(directory, "requests", "2.28.2") == ["PYSEC-2023-74"]
    assert directory.problems == []  # demo-malformed/ was not opened


def test_parsed_records_are_cached(tmp_path: Path) -> None:
    """The second question is answered from memory: a file removed meanwhile still counts."""
    copy = shutil.copytree(FIXTURES / "vulns", tmp_path / "vulns")
    source = OsvDirectory(tmp_path)
    assert ids_for(source, "pyarrow", "14.0.0") == ["PYSEC-2023-238"]
    (copy / "pyarrow" / "PYSEC-2023-238.yaml").unlink()
    assert ids_for(source, "pyarrow", "13.0.0") == ["PYSEC-2023-238"]
    assert ids_for(OsvDirectory(tmp_path), "pyarrow", "14.0.0") == []


@pytest.mark.parametrize("layout", ["vulns-dir", "flat"])
def test_other_layouts(tmp_path: Path, layout: str) -> None:
    """The vulns/ folder itself, or a flat folder of records (osv.dev export style), work too."""
    if layout == "vulns-dir":
        root = shutil.copytree(FIXTURES / "vulns", tmp_path / "vulns")
    else:
        root = tmp_path / "flat"
        root.mkdir()
        for name in ("pyarrow/PYSEC-2023-238.yaml", "demo-json/DEMO-2024-7.json"):
            shutil.copy(FIXTURES / "vulns" / name, root)
        (root / ".hidden.yaml").write_text("not: [valid")  # dot-files are ignored
        (root / "notes.txt").write_text("not an advisory")
    source = OsvDirectory(root)
    assert ids_for(source, "pyarrow", "14.0.0") == ["PYSEC-2023-238"]
    assert ids_for(source, "demo-json", "1.0") == ["DEMO-2024-7"]
    assert ids_for(source, "pandas", "1.5.3") == []
    assert source.problems == []


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    """A path that does not exist, or is a file, raises AdvisoryError naming it."""
    with pytest.raises(AdvisoryError, match=f"{tmp_path / 'nope'} does not exist"):
        OsvDirectory(tmp_path / "nope")
    file = tmp_path / "file.yaml"
    file.write_text("id: X")
    with pytest.raises(AdvisoryError, match="is not a directory"):
        OsvDirectory(file)


def test_record_by_id(tmp_path: Path, directory: OsvDirectory) -> None:
    """Records are found by file name first, then by the id inside; unknown or unsafe -> None."""
    found = directory.record("PYSEC-2023-74")
    assert found is not None and found.document["aliases"][0] == "CVE-2023-32681"
    assert directory.record("DEMO-2024-7") is not None  # a .json file
    assert directory.record("NOPE-1") is None
    assert directory.record("../README") is None
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(FIXTURES / "vulns" / "duckdb" / "PYSEC-2024-25.yaml", flat / "renamed.yaml")
    renamed = OsvDirectory(flat).record("PYSEC-2024-25")
    assert renamed is not None and renamed.id == "PYSEC-2024-25"


@pytest.mark.skipif(not SNAPSHOT.is_dir(), reason="the PyPA advisory snapshot is not here")
def test_real_snapshot_answers_the_orders_pins() -> None:
    """Against the full PyPA snapshot, the orders pins get exactly the expected advisories."""
    source = OsvDirectory(SNAPSHOT)
    pins = [pin("pyarrow", "14.0.0"), pin("requests", "2.28.2"), pin("duckdb", "0.9.2")]
    pins.append(pin("pandas", "1.5.3"))
    found = source.advisories_for(pins)
    by_pin = {key: {a.id: a for a in found[key]} for key in pins}
    assert by_pin[pin("pyarrow", "14.0.0")]["PYSEC-2023-238"].first_fix_after("14.0.0") == "14.0.1"
    assert by_pin[pin("requests", "2.28.2")]["PYSEC-2023-74"].first_fix_after("2.28.2") == "2.31.0"
    assert "PYSEC-2024-25" in by_pin[pin("duckdb", "0.9.2")]
    assert "PYSEC-2020-73" not in by_pin[pin("pandas", "1.5.3")]
    assert [a.id for a in source.advisories_of("pandas")] == ["PYSEC-2020-73"]
    assert source.problems == []


def test_a_parse_cache_answers_the_same_and_follows_edits(tmp_path: Path) -> None:
    """Parsed records cached as JSON give the same advisories; an edited file is re-read."""
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "advisories"
    root = Path(shutil.copytree(fixtures, tmp_path / "advisories"))
    cache = tmp_path / "cache"
    plain = OsvDirectory(root).advisories_for([("requests", "2.28.2"), ("pyarrow", "14.0.0")])
    first = OsvDirectory(root, cache_dir=cache).advisories_for(
        [("requests", "2.28.2"), ("pyarrow", "14.0.0")]
    )
    assert len(list(cache.iterdir())) >= 2
    second = OsvDirectory(root, cache_dir=cache).advisories_for(
        [("requests", "2.28.2"), ("pyarrow", "14.0.0")]
    )
    assert plain == first == second and plain
    record = root / "vulns" / "requests" / "PYSEC-2023-74.yaml"
    record.write_text(record.read_text().replace("2.31.0", "2.30.9"))
    edited = OsvDirectory(root, cache_dir=cache).advisories_for([("requests", "2.28.2")])
    assert "2.30.9" in next(iter(edited.values()))[0].fixed_versions
