"""Mauna Loa CO2 (statsmodels' weekly record, 1958-2001), the data of `python -m models gp --dataset co2`.

References:
  Keeling and Whorf, `Atmospheric CO2 records from sites in the SIO air sampling network
  <https://cdiac.ess-dive.lbl.gov/trends/co2/sio-mlo.html>`_, 2004.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_co2"]


def load_co2() -> tuple[np.ndarray, np.ndarray]:
    """Monthly mean Mauna Loa CO2 (statsmodels' weekly record 1958-2001, missing weeks dropped).

    Returns:
      `(years [n], ppm [n])`: decimal year of each month's middle, and its mean CO2 in ppm.

    Raises:
      ImportError: statsmodels is not installed.
    """
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data.dropna()
    monthly = frame["co2"].resample("MS").mean().dropna()
    years = monthly.index.year + (monthly.index.month - 0.5) / 12.0
    return np.asarray(years, np.float64), np.asarray(monthly.values, np.float64)
