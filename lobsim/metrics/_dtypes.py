"""The markout records: the C struct's mirror and the per-fill table of a result."""
import numpy as np

N_HORIZONS = 4  # lob_sim_config.markout_ns[4]

SIM_MARKOUT_DTYPE = np.dtype(
    {
        "names": ["msg", "ts", "mid2", "after2"],
        "formats": ["<u8", "<i8", "<i8", ("<i8", (N_HORIZONS,))],
        "offsets": [0, 8, 16, 24],
        "itemsize": 56,
    }
)
"""One markout record of the simulator (lob_sim_markout, 56 bytes), one per fill in fill order."""

MARKOUTS_DTYPE = np.dtype([
    ("ts", "<i8"),                        # venue time of the fill (= fills["ts_exch"])
    ("mid2", "<i8"),                      # bid + ask of the venue book at the fill, ticks x 2; 0 unknown
    ("after2", "<i8", (N_HORIZONS,)),     # bid + ask at ts + markout_ns[h]; 0 unknown or horizon unused
    ("spread", "<f8"),                    # side * (mid2 / 2 - price), ticks; NaN unknown
    ("markout", "<f8", (N_HORIZONS,)),    # side * (after2[h] / 2 - price), ticks; NaN unknown
])
"""result.markouts: row i belongs to result.fills[i]; column h of after2/markout to result.markout_ns[h]."""
