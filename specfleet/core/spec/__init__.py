"""The ``dataproduct.yaml`` spec: its model, a loader with located problems, and its rules."""

from specfleet.core.spec.loader import SpecCheck, check_spec_bytes, check_spec_file, load_spec
from specfleet.core.spec.model import Spec
from specfleet.core.spec.problems import Problem

__all__ = ["Problem", "Spec", "SpecCheck", "check_spec_bytes", "check_spec_file", "load_spec"]
