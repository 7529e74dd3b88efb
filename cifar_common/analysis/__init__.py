"""Finished runs judged: statistics, comparisons, bands, results page. Only entry points and tests import it."""
