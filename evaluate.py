"""Evaluate trained checkpoints.

    python evaluate.py --ckpt+ runs/.../baseline.ckpt --ckpt+ runs/.../topdown.ckpt \
        --config configs/eval/quick.yaml --out outputs/eval          # accuracy and robustness
    python evaluate.py visualize --ckpt+ ... --ckpt+ ... --out outputs/vis   # feature visualizations
"""

from topdown.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
