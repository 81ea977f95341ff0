"""Write the real HAPT recordings as a folder of plain CSV files in harkit's `csv` layout.

This is the worked example of bringing your own data: after running it,

    python examples/hapt_to_csv.py --data-dir ../shared/data --out my_logs
    harkit train --dataset csv --data-dir my_logs
    harkit cv --dataset csv --data-dir my_logs --protocol kfold --folds 5

train on the CSV files exactly as they would on logs from their own phone or watch. Each file
is one experiment, `subjectUU_expEE.csv`, with a header

    timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,label

one row per sample (seconds, g, rad/s, activity name; empty label = unlabelled).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harkit.data import load_dataset
from harkit.data.recording import RecordingDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder holding hapt/ (else HARKIT_DATA_DIR)")
    ap.add_argument("--out", default="my_logs")
    ap.add_argument("--activities", type=int, default=6, choices=(6, 12))
    args = ap.parse_args()
    ds = load_dataset("hapt", data_dir=args.data_dir, activities=args.activities)
    assert isinstance(ds, RecordingDataset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = np.array([*ds.classes, ""], dtype=object)  # index -1 (unlabelled) -> ""
    for rec in ds.recordings:
        t = np.arange(len(rec)) / ds.sampling_rate
        rows = [f"{ti:.2f}," + ",".join(f"{v:.6g}" for v in row) + f",{names[lab]}"
                for ti, row, lab in zip(t, rec.signal, rec.labels, strict=True)]
        path = out / f"subject{rec.subject:02d}_exp{rec.meta['experiment']:02d}.csv"
        path.write_text("timestamp," + ",".join(ds.channels) + ",label\n" + "\n".join(rows) + "\n")
    print(f"wrote {len(ds.recordings)} files for {len(ds.subject_ids())} subjects to {out}/")


if __name__ == "__main__":
    main()
