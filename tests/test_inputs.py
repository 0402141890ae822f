"""Bad values inside otherwise well-formed data files are refused with the place they occur."""
from __future__ import annotations

import pytest

from sln.timeseries import TSFormatError, parse_ts

HEADER = "@problemName X\n@timeStamps false\n@missing false\n@univariate true\n@equalLength true\n" \
         "@seriesLength 3\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize("value", ["inf", "-inf", "1e999", "nan", "-1E400", "1e300"])
def test_non_finite_ts_values_are_refused(value: str) -> None:
    with pytest.raises(TSFormatError, match=r"bad\.ts.*not a finite number"):
        parse_ts(HEADER + f"1,{value},3:a\n2,3,4:b\n", "bad.ts")


def test_finite_extremes_still_parse() -> None:
    d = parse_ts(HEADER + "1,1e30,-3:a\n2,3,4:b\n", "ok.ts")
    assert d.series[0][0, 1] == pytest.approx(1e30, rel=1e-6) and list(d.labels) == [0, 1]
