"""Kept for the recipe code until it looks licences up in the catalogue: the table lives in
:mod:`koembed.data.catalogue` (each data set's ``licence``); this module only re-exports its lookups and
derives the old folder -> licence view from it."""

from __future__ import annotations

from koembed.data.catalogue import CATALOGUE, DataLicence, licence_for, licences_for

# folder under the data folder -> licence (the first data set of a folder, as licence_for finds it)
LICENCES: dict[str, DataLicence] = {}
for _, _ds in CATALOGUE.items():
    LICENCES.setdefault(_ds.folder, _ds.licence)

__all__ = ["LICENCES", "DataLicence", "licence_for", "licences_for"]
