"""The ``store_footfall`` data product: daily visitors per store from door-sensor counts."""
