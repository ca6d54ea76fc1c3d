"""The product registry: register, list, show and remove data products; import thousands.

Registration reads the spec from the product's repository (through the mirror cache) and
refuses a repository whose spec is missing or invalid. Everything is idempotent: registering
or importing what is already registered changes nothing and says so.
"""

from specfleet.core.registry.decisions import (
    Registration,
    RegistrationResult,
    ResolvedProduct,
    changed_fields,
    decide,
)
from specfleet.core.registry.importfile import read_import_file, registration_from_mapping
from specfleet.core.registry.reader import SpecReader
from specfleet.core.registry.store import (
    ImportReport,
    ImportRow,
    Registry,
    RowFailure,
    get_product,
    list_products,
    product_history,
    utc_text,
)

__all__ = [
    "ImportReport",
    "ImportRow",
    "Registration",
    "RegistrationResult",
    "Registry",
    "ResolvedProduct",
    "RowFailure",
    "SpecReader",
    "changed_fields",
    "decide",
    "get_product",
    "list_products",
    "product_history",
    "read_import_file",
    "registration_from_mapping",
    "utc_text",
]
