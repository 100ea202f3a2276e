"""Train TFSWA-UNet with Accelerate.

    accelerate launch train_accelerate.py                        # the quickstart (configs/quickstart.yaml)
    accelerate launch train_accelerate.py --config configs/musdb18hq-4stems.yaml \\
        --data.root /data/musdb18hq --output_dir runs/4stems --optim.lr 5e-4
    accelerate launch train_accelerate.py --config ... --resume latest
    accelerate launch train_accelerate.py --config ... --push_to_hub --hub_model_id user/name

Every option is a key of `modeling_tfswa.training.config.TrainingConfig` (dotted for sections).
"""

import sys
from pathlib import Path

from modeling_tfswa.training.cli import main

QUICKSTART = Path(__file__).resolve().parent / "configs" / "quickstart.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=QUICKSTART))
