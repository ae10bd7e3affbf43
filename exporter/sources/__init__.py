"""Vendor sources: each module turns one vendor endpoint into targets and samples."""
