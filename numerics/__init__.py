"""What training does: data samplers, real transformer models, exact population losses, a trainer.

torch, numpy and scipy only; nothing in here imports sympy or knows about the theorems.
"""
