"""The register-bank image LDM: data, autoencoder, training, sampling, editing, evaluation."""
