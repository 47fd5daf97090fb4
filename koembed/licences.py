"""Kept for the recipe code until it looks licences up in the catalogue: the table lives in
:mod:`koembed.data.catalogue` (each data set's ``licence``); this module only re-exports its lookups."""

from __future__ import annotations

from koembed.data.catalogue import DataLicence, licence_for, licences_for

__all__ = ["DataLicence", "licence_for", "licences_for"]
