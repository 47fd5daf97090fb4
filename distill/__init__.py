"""distill: produce KoMiniLM backbones by MiniLM self-attention distillation, and benchmark them."""
