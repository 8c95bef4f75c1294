# Swin-B/W14 fine-tuned at 224 px for 100 epochs (official exp/base_600ep/finetune.sh:
# 8 GPUs x 128, --blr 5e-4 --layer_decay 0.7 --drop_path 0.1 --epochs 100).
_base_ = './_base_/mixmae-swin_finetune_in1k.py'
