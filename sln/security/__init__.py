"""Security applications on real, offline data (no network access at run time, nothing fetched is executed).

Malicious domains and URLs (docs/SECURITY_APPS.md): `sources` (pins, licences, fetch), `parse`
(normalisation, list parsers), `psl` (eTLD+1), `domains` (labels, grouped/temporal splits, character
encoder), `metrics`, `baselines`, `bench`. Other modules of this package document themselves.
Nothing in the core package imports this one; scikit-learn is needed only by `baselines`.
"""
