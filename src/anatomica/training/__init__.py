"""Training with PyTorch Lightning: the tasks (autoencoder, latent diffusion), the trainer, run folders, loading."""
